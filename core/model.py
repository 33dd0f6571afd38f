"""The caption network: EfficientNet-B0 image encoder, Transformer encoder and decoder, in one file."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

FEATURE_GRID = 7  # efficientnet_b0.features gives a 7x7 map at 224x224


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    vocab_size: int = 4000  # words incl. <pad>, <start>, <end>, <unk>
    d_model: int = 512  # width of every Transformer layer
    n_heads: int = 8  # attention heads (d_model must divide evenly)
    n_encoder_layers: int = 1  # Transformer layers over the 49 image tokens
    n_decoder_layers: int = 3  # Transformer decoder layers
    d_ff: int = 2048  # hidden width of the feed-forward blocks
    dropout: float = 0.1  # dropout in attention, feed-forward and embeddings
    max_len: int = 25  # tokens per caption incl. <start> and <end>
    feature_dim: int = 1280  # channels of the backbone's last feature map
    n_image_tokens: int = FEATURE_GRID * FEATURE_GRID  # 49 positions of the 7x7 map
    tie_embeddings: bool = True  # output projection shares the word embedding
    pad_id: int = 0  # must equal the vocabulary's <pad> index
    style: str = ""  # caption style asked for at inference (a "<style:...>" token); "" = none
    n_tags: int = 0  # words of the encoder's top ImageNet classes given as extra tokens (0 = none)
    n_classes: int = 1000  # classes of the encoder's ImageNet head (used only when n_tags > 0)
    tag_copy: bool = False  # with n_tags: the decoder may also copy a tag word (pointer/copy)

    def __post_init__(self) -> None:
        assert self.d_model % self.n_heads == 0, "d_model must be divisible by n_heads"
        assert not self.tag_copy or self.n_tags > 0, "tag_copy needs tags (n_tags > 0)"
        assert self.max_len >= 3, "max_len must leave room for <start>, a word and <end>"

    def to_dict(self) -> dict[str, int | float | bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)


# --------------------------------------------------------------------------- image encoder


class Conv2dSame(nn.Conv2d):
    """A Conv2d padded like TensorFlow's "SAME" (extra pixel at bottom/right), same state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def use_tf_same_padding(module: nn.Module) -> int:
    """Swap every stride-2 conv for a TF "SAME"-padded one in place; returns how many were swapped.

    The shipped encoder weights come from TensorFlow, which pads stride-2 convolutions
    asymmetrically; torchvision pads symmetrically, which shifts every feature by half a pixel.
    """
    swapped = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d and child.stride != (1, 1):
                same = Conv2dSame(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    stride=child.stride,
                    padding=0,
                    dilation=child.dilation,
                    groups=child.groups,
                    bias=child.bias is not None,
                )
                same.weight = child.weight
                same.bias = child.bias
                setattr(parent, name, same)
                swapped += 1
    return swapped


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Conv (no bias) + batch norm (+ SiLU): torchvision's Conv2dNormActivation, same keys."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel attention: each channel scaled by a gate computed from the whole map's mean."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.activation(self.fc1(self.avgpool(x))))  # (B, C, 1, 1)
        return self.scale_activation(gate) * x


class MBConv(nn.Module):
    """Inverted residual block: expand 1x1, depthwise kxk, squeeze-excite, project 1x1."""

    def __init__(
        self, c_in: int, c_out: int, expand: int, kernel: int, stride: int, drop_path: float
    ) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = [conv_bn(c_in, hidden, 1)] if expand != 1 else []
        layers += [
            conv_bn(hidden, hidden, kernel, stride, groups=hidden),
            SqueezeExcitation(hidden, max(1, c_in // 4)),
            conv_bn(hidden, c_out, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.drop_path = drop_path  # stochastic depth: the share of rows whose block is dropped
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if not self.residual:
            return out
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device)
            out = out * mask.bernoulli_(keep).div_(keep)  # (B, 1, 1, 1) per-photo keep mask
        return out + x


# (expand ratio, kernel, stride, channels in, channels out, blocks) per stage of B0
EFFICIENTNET_B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


class EfficientNetB0(nn.Module):
    """EfficientNet-B0 (Tan & Le, 2019) with torchvision's module layout and state-dict keys.

    Defined here rather than imported from torchvision, whose import costs the app about
    1.2 s (it pulls in torch._dynamo) before the first caption. features: (B, 3, 224, 224) ->
    (B, 1280, 7, 7); the classifier is used only by training (ImageNet labels of the converted
    weights).
    """

    def __init__(
        self, num_classes: int = 1000, dropout: float = 0.2, drop_path: float = 0.2
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 32, 3, stride=2)]
        total = sum(stage[-1] for stage in EFFICIENTNET_B0_STAGES)
        index = 0
        for expand, kernel, stride, c_in, c_out, blocks in EFFICIENTNET_B0_STAGES:
            stage = []
            for i in range(blocks):
                first = i == 0
                stage.append(
                    MBConv(
                        c_in if first else c_out,
                        c_out,
                        expand,
                        kernel,
                        stride if first else 1,
                        drop_path * index / total,
                    )
                )
                index += 1
            layers.append(nn.Sequential(*stage))
        layers.append(conv_bn(320, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True), nn.Linear(1280, num_classes)
        )
        for m in self.modules():  # torchvision's initialisation, in the same order
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x)).flatten(1)  # (B, 1280)
        return self.classifier(x)  # (B, num_classes)


@torch.no_grad()
def fold_batch_norms(module: nn.Module) -> int:
    """Fold each eval-mode batch norm into the convolution before it, in place; returns how many.

    For inference only: conv(x) * scale + shift is computed as one convolution with scaled
    weights and a bias, which saves a pass over every feature map (the encoder in fp32 takes
    31 instead of 64 ms of CPU per photo on a 2-core Xeon). Outputs agree with the unfolded
    network to rounding (about 1e-5 in the features). The folded module can no longer train.
    """
    folded = 0
    for seq in list(module.modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            assert not bn.training, "fold batch norms only in eval mode"
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), False)
            conv.bias = nn.Parameter(bias, False)
            seq[i + 1] = nn.Identity()
            folded += 1
    return folded


def build_efficientnet_b0(tf_padding: bool = True) -> nn.Module:
    """EfficientNet-B0 (random weights), with TF padding on its stride-2 convs."""
    net = EfficientNetB0()
    if tf_padding:
        swapped = use_tf_same_padding(net)
        assert swapped == 5, f"expected 5 stride-2 convs in efficientnet_b0, found {swapped}"
    return net


# --------------------------------------------------------------------------- transformer


class Attention(nn.Module):
    """Multi-head attention with an optional key/value cache for one-token decoding steps."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv_proj = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, H, T, hd)

    def project_kv(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv_proj(src).chunk(2, dim=-1)  # (B, S, C) each
        return self._heads(k), self._heads(v)  # (B, H, S, hd) each

    def forward(
        self,
        x: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor],
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q = self._heads(self.q_proj(x))  # (B, H, T, hd)
        k, v = kv
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )  # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.out_proj(y)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.dropout(F.gelu(self.fc1(x)))))


class EncoderLayer(nn.Module):
    """Pre-norm self-attention over the image tokens."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ff = FeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.drop(self.attn(h, self.attn.project_kv(h)))
        return x + self.ff(self.ln2(x))


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, cross-attention to the image memory, feed-forward."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.self_attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.cross_attn = Attention(cfg)
        self.ln3 = nn.LayerNorm(cfg.d_model)
        self.ff = FeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        self_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Full sequence when self_kv is None (causal); otherwise x is the next token only.

        Returns the output and the self-attention keys/values including this call's tokens.
        """
        h = self.ln1(x)
        k, v = self.self_attn.project_kv(h)  # (B, H, T, hd)
        if self_kv is None:
            x = x + self.drop(self.self_attn(h, (k, v), is_causal=x.shape[1] > 1))
        else:
            k = torch.cat([self_kv[0], k], dim=2)  # (B, H, T_past + 1, hd)
            v = torch.cat([self_kv[1], v], dim=2)
            x = x + self.drop(self.self_attn(h, (k, v)))
        h = self.ln2(x)
        N, T, C = h.shape
        M = memory_kv[0].shape[0]
        if M != N:
            # N = M*g rows in groups of g that share one photo (beam search): the group's
            # queries attend to that photo's keys together, so its memory is never copied.
            y = self.cross_attn(h.reshape(M, (N // M) * T, C), memory_kv).reshape(N, T, C)
        else:
            y = self.cross_attn(h, memory_kv)
        x = x + self.drop(y)
        x = x + self.ff(self.ln3(x))
        return x, (k, v)


@dataclass
class DecoderCache:
    """Per-layer keys/values: cross-attention (fixed) and self-attention (grows one token a step).

    memory_kv may have fewer rows than the decoder: then each memory row serves a group of
    consecutive decoder rows (the beams of one photo).
    """

    memory_kv: list[tuple[torch.Tensor, torch.Tensor]]
    self_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    length: int = 0
    # Copy models only: per memory row, the encoded tag tokens (M, k, C) and their words (M, k).
    tags: tuple[torch.Tensor, torch.Tensor] | None = None

    def reorder(self, index: torch.Tensor, photos: torch.Tensor | None = None) -> DecoderCache:
        """Select rows (beam search): self-attention rows by index; memory rows by photos when
        given (beams share their photo's memory, so it changes only when photos finish)."""

        def pick(
            kv: tuple[torch.Tensor, torch.Tensor], rows: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            return kv[0].index_select(0, rows), kv[1].index_select(0, rows)  # (R, H, T, hd)

        return DecoderCache(
            memory_kv=self.memory_kv
            if photos is None
            else [pick(kv, photos) for kv in self.memory_kv],
            self_kv=None if self.self_kv is None else [pick(kv, index) for kv in self.self_kv],
            length=self.length,
            tags=self.tags if photos is None or self.tags is None else pick(self.tags, photos),
        )


class CaptionModel(nn.Module):
    """EfficientNet-B0 features -> projection -> Transformer encoder -> Transformer decoder."""

    def __init__(self, cfg: ModelConfig, with_backbone: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        # The backbone is optional so that training on cached features need not carry it.
        self.backbone = build_efficientnet_b0().features if with_backbone else None
        self.feature_proj = nn.Linear(cfg.feature_dim, cfg.d_model)
        self.image_pos = nn.Parameter(torch.zeros(1, cfg.n_image_tokens, cfg.d_model))
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.encoder_ln = nn.LayerNorm(cfg.d_model)
        self.token_emb = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        if cfg.n_tags > 0:
            # Object tags as anchors (OSCAR/VinVL): the frozen encoder's ImageNet head names
            # things few captions mention; its classes' plain words join the image tokens.
            self.tag_head = nn.Linear(cfg.feature_dim, cfg.n_classes).requires_grad_(False)
            # tag_words[c]: the vocabulary id of class c's word, -1 for a class with none.
            self.register_buffer("tag_words", torch.full((cfg.n_classes,), -1, dtype=torch.long))
            self.tag_pos = nn.Parameter(torch.zeros(1, cfg.n_tags, cfg.d_model))
            self.tag_score = nn.Parameter(torch.zeros(cfg.d_model))  # times the word's probability
        if cfg.tag_copy:
            # Pointer/copy (See et al., 2017): a gate mixes the vocabulary distribution with
            # attention over the tag tokens, so a tag word can be said where few captions say it.
            self.copy_query = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
            self.copy_gate = nn.Linear(cfg.d_model, 1)
        self.token_pos = nn.Parameter(torch.zeros(1, cfg.max_len, cfg.d_model))
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        self.decoder_ln = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_weights()
        if cfg.tag_copy:
            # Copying starts rare (gate about 0.05), so a trained model starts as it was.
            nn.init.constant_(self.copy_gate.bias, -3.0)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.token_emb.weight

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if name.startswith("backbone."):
                continue
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
        nn.init.normal_(self.image_pos, std=0.02)
        nn.init.normal_(self.token_pos, std=0.02)
        with torch.no_grad():
            self.token_emb.weight[self.cfg.pad_id].zero_()

    # ---- image side

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) normalised images -> (B, 1280, 7, 7) feature maps."""
        assert self.backbone is not None, "this model was built without its image backbone"
        return self.backbone(images)

    def encode_features(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 1280, 7, 7) or (B, 49, 1280) features -> (B, 49, d_model) memory."""
        if features.dim() == 4:
            B, C, H, W = features.shape
            features = features.flatten(2).transpose(1, 2)  # (B, H*W, C)
        assert features.shape[1:] == (self.cfg.n_image_tokens, self.cfg.feature_dim), (
            f"expected features of shape (B, {self.cfg.n_image_tokens}, {self.cfg.feature_dim}), "
            f"got {tuple(features.shape)}"
        )
        features = features.to(self.feature_proj.weight.dtype)
        x = self.feature_proj(features) + self.image_pos  # (B, 49, C)
        if self.cfg.n_tags > 0:
            words, scores = self.image_tags(features)  # (B, k) each
            tags = self.token_emb(words) + self.tag_pos + scores[..., None] * self.tag_score
            x = torch.cat([x, tags.to(x.dtype)], dim=1)  # (B, 49 + k, C)
        x = self.emb_drop(x)
        for layer in self.encoder_layers:
            x = layer(x)
        return self.encoder_ln(x)  # (B, 49 [+ k], C)

    def image_tags(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 49, 1280) features -> the n_tags most likely words (B, k) and their probabilities.

        A word's probability is the sum over the ImageNet classes that map to it (tabby, tiger
        cat and Persian cat all say "cat"), so each word appears once.
        """
        probs = self.tag_head(features.mean(1)).float().softmax(-1)  # (B, n_classes)
        mapped = self.tag_words >= 0
        per_word = probs.new_zeros(probs.shape[0], self.cfg.vocab_size)
        per_word.index_add_(1, self.tag_words[mapped], probs[:, mapped])  # (B, V)
        scores, words = per_word.topk(self.cfg.n_tags, dim=1)
        return words, scores

    def copy_words(self, features: torch.Tensor) -> torch.Tensor | None:
        """(B, 1280, 7, 7) or (B, 49, 1280) features -> the (B, k) tag words a copy model may copy;
        None for a model without copying."""
        if not self.cfg.tag_copy:
            return None
        if features.dim() == 4:
            features = features.flatten(2).transpose(1, 2)  # (B, 49, 1280)
        return self.image_tags(features.to(self.feature_proj.weight.dtype))[0]

    def _next_word(
        self, h: torch.Tensor, tags: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """(N, T, C) decoder states -> (N, T, V) logits; for a copy model, log-probabilities of
        the gated mixture (the same thing to cross-entropy and log_softmax).

        tags: per row of h, the encoded tag tokens (N, k, C) and their words (N, k)."""
        logits = self.lm_head(h)
        if not self.cfg.tag_copy:
            return logits
        assert tags is not None, "a copy model needs its tag words (copy_words) to decode"
        tag_memory, words = tags
        q = self.copy_query(h)  # (N, T, C)
        att = (q @ tag_memory.transpose(1, 2) / math.sqrt(h.shape[-1])).float().softmax(-1)
        gate = torch.sigmoid(self.copy_gate(h).float())  # (N, T, 1)
        copied = logits.new_zeros(logits.shape, dtype=torch.float32)  # (N, T, V)
        copied.scatter_add_(2, words[:, None, :].expand(-1, h.shape[1], -1), att)
        mixed = (1 - gate) * logits.float().softmax(-1) + gate * copied
        return mixed.clamp_min(1e-12).log()

    def _tag_rows(
        self, memory: torch.Tensor, tag_words: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.cfg.tag_copy:
            return None
        assert tag_words is not None, "a copy model needs its tag words (copy_words) to decode"
        return memory[:, self.cfg.n_image_tokens :], tag_words  # (B, k, C), (B, k)

    # ---- text side

    def _embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        T = tokens.shape[1]
        assert start + T <= self.cfg.max_len, f"sequence longer than max_len={self.cfg.max_len}"
        pos = self.token_pos[:, start : start + T]  # (1, T, C)
        return self.emb_drop(self.token_emb(tokens) + pos)  # (B, T, C)

    def decode(
        self,
        tokens: torch.Tensor,
        memory: torch.Tensor,
        repeats: int = 1,
        photo_index: torch.Tensor | None = None,
        tag_words: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced decoding: (N, T) tokens, (B, 49, C) memory -> (N, T, V).

        Several captions per photo share the photo's projected memory: N = B*repeats consecutive
        captions per photo, or photo_index (N,) naming each caption's photo. tag_words (B, k):
        copy models only (copy_words).
        """

        def per_caption(t: torch.Tensor) -> torch.Tensor:  # (B, ...) -> (N, ...)
            if photo_index is not None:
                return t.index_select(0, photo_index)
            return t.repeat_interleave(repeats, 0) if repeats > 1 else t

        x = self._embed(tokens, 0)
        for layer in self.decoder_layers:
            k, v = layer.cross_attn.project_kv(memory)  # (B, H, 49, hd) each
            x, _ = layer(x, (per_caption(k), per_caption(v)))
        tags = self._tag_rows(memory, tag_words)
        if tags is not None:
            tags = (per_caption(tags[0]), per_caption(tags[1]))
        return self._next_word(self.decoder_ln(x), tags)

    def forward(
        self,
        features: torch.Tensor,
        tokens: torch.Tensor,
        targets: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        photo_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """features (B, 1280, 7, 7) or (B, 49, 1280); tokens/targets (N, T) -> (logits, loss).

        Caption i belongs to photo photo_index[i]; without photo_index, N = B*repeats and each
        photo serves `repeats` consecutive captions. The loss is the mean over non-pad targets.
        """
        repeats = 1
        if photo_index is None:
            repeats = tokens.shape[0] // features.shape[0]
            assert repeats * features.shape[0] == tokens.shape[0], (
                "captions per photo must be whole"
            )
        memory = self.encode_features(features)  # (B, 49, C)
        words = self.copy_words(features)  # (B, k) or None
        logits = self.decode(tokens, memory, repeats, photo_index, words)  # (N, T, V)
        loss = None if targets is None else self.loss(logits, targets, label_smoothing)
        return logits, loss

    def loss(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Cross-entropy of (N, T, V) logits against (N, T) targets, <pad> ignored."""
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),  # (N*T, V)
            targets.reshape(-1),  # (N*T,)
            ignore_index=self.cfg.pad_id,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )

    def configure_optimizers(
        self, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.98)
    ) -> torch.optim.AdamW:
        """AdamW as in nanoGPT: tensors with 2+ dims (matrices, embeddings) decay; biases and
        norms do not. The frozen backbone, if present, is left out."""
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        params = [(n, p) for n, p in params if not n.startswith("backbone.")]
        groups = [
            {"params": [p for _, p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for _, p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas)

    # ---- incremental decoding (inference)

    def start_cache(
        self, memory: torch.Tensor, tag_words: torch.Tensor | None = None
    ) -> DecoderCache:
        """Cross-attention keys/values are computed once per image, not once per token.

        tag_words (B, k): copy models only (copy_words)."""
        return DecoderCache(
            memory_kv=[layer.cross_attn.project_kv(memory) for layer in self.decoder_layers],
            tags=self._tag_rows(memory, tag_words),
        )

    def step(self, token: torch.Tensor, cache: DecoderCache) -> tuple[torch.Tensor, DecoderCache]:
        """One decoding step: (B,) newest tokens -> (B, vocab) log-probabilities of the next one."""
        x = self._embed(token[:, None], cache.length)  # (B, 1, C)
        new_self_kv = []
        for i, layer in enumerate(self.decoder_layers):
            past = None if cache.self_kv is None else cache.self_kv[i]
            x, kv = layer(x, cache.memory_kv[i], past)
            new_self_kv.append(kv)
        tags = cache.tags
        if tags is None:
            logits = self.lm_head(self.decoder_ln(x[:, -1]))  # (B, V)
        else:
            if tags[0].shape[0] != x.shape[0]:  # k beams share their photo's row
                g = x.shape[0] // tags[0].shape[0]
                tags = (tags[0].repeat_interleave(g, 0), tags[1].repeat_interleave(g, 0))
            logits = self._next_word(self.decoder_ln(x[:, -1:]), tags)[:, 0]  # (B, V)
        cache = DecoderCache(cache.memory_kv, new_self_kv, cache.length + 1, cache.tags)
        return F.log_softmax(logits.float(), dim=-1), cache
