"""``t5``: a small HuggingFace T5 encoder-decoder built from a config (no weights downloaded).

Defaults follow Liu & Mou's "customized T5-small": 1 encoder + 1 decoder layer, d_model 256,
4 heads of d_kv = d_model / heads = 64, ReLU feed-forward of d_ff = 1024 (4 · d_model; the paper
does not state it, T5-small's ratio is 4), no dropout, input and output embeddings tied (T5's
default). The vocabulary is plasticlab's character tokenizer (``plasticlab.language.tokenizer``).

``forward(x, y)`` returns teacher-forced logits (B, L_out, V): the encoder reads x with an
attention mask on <pad>; the decoder reads y shifted right behind <bos> under a causal mask, so
output position t predicts y_t. Targets' <pad> positions are excluded by the loss
(``ignore_index``), and right-padding either side leaves the logits of real positions unchanged
(T5 uses relative positions).

Initialisation is T5's (``T5PreTrainedModel._init_weights``, transformers 5.x), with f =
``init_factor``: embeddings (and the lm_head, tied or not) ~ N(0, f²); attention q ~ N(0,
f²/(d_model·d_kv)), k, v ~ N(0, f²/d_model), o ~ N(0, f²/(heads·d_kv)); relative-position
biases ~ N(0, f²/d_model); feed-forward wi ~ N(0, f²/d_model), wo ~ N(0, f²/d_ff); RMS-norm
gains f. No Linear has a bias. Needs ``pip install plasticlab[language]``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.language.tokenizer import BOS, EOS, PAD, VOCAB_SIZE
from plasticlab.registry import UserError
from plasticlab.units import Slice, UnitLayer


@registry.register(registry.MODELS, "t5")
@dataclass
class T5Spec:
    """Config of the ``t5`` model (for the language families)."""

    name: str = "t5"
    d_model: int = field(default=256, metadata=bounds(ge=1))
    layers: int = field(default=1, metadata=bounds(ge=1))
    """Encoder layers."""
    decoder_layers: int = field(default=1, metadata=bounds(ge=1))
    heads: int = field(default=4, metadata=bounds(ge=1))
    d_kv: int | None = field(default=None, metadata=bounds(ge=1))
    """Size of one attention head; null = d_model / heads."""
    d_ff: int = field(default=1024, metadata=bounds(ge=1))
    """Feed-forward width (the units of the unit map)."""
    activation: Literal["relu", "gelu"] = "relu"
    dropout: float = field(default=0.0, metadata=bounds(ge=0, lt=1))
    tie_embeddings: bool = True
    """Share the input embedding with the output layer (T5's default); a head reset then also
    re-draws the input embedding."""
    init_factor: float = field(default=1.0, metadata=bounds(gt=0))
    """T5's ``initializer_factor`` f (module docstring)."""
    relative_buckets: int = field(default=32, metadata=bounds(ge=1))
    relative_max_distance: int = field(default=128, metadata=bounds(ge=1))

    requires = (("transformers", "model t5 needs HuggingFace transformers: pip install 'plasticlab[language]'"),)
    """(module, message) of each optional package a run of this model imports: a sweep checks them
    before it starts any run (``plasticlab.sweep.driver.preflight``)."""

    def validate(self, key: str) -> None:
        if self.d_kv is None and self.d_model % self.heads:
            raise UserError(f"config: {key}.heads: {self.heads} does not divide d_model={self.d_model} "
                            "(set d_kv explicitly)")

    def build(self, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
        if len(input_shape) != 1 or n_out < VOCAB_SIZE:
            raise UserError(f"model t5 needs a language family (token inputs); got inputs of shape {input_shape} "
                            "(use tasks.family=random-seq2seq or bigram-cipher)")
        return T5Seq2Seq(self, n_out)


def t5_config(spec: T5Spec, vocab: int):
    try:
        from transformers import T5Config
    except ImportError:
        raise UserError(T5Spec.requires[0][1]) from None
    return T5Config(vocab_size=vocab, d_model=spec.d_model, d_kv=spec.d_kv or spec.d_model // spec.heads,
                    d_ff=spec.d_ff, num_layers=spec.layers, num_decoder_layers=spec.decoder_layers,
                    num_heads=spec.heads, dropout_rate=spec.dropout, feed_forward_proj=spec.activation,
                    initializer_factor=spec.init_factor, tie_word_embeddings=spec.tie_embeddings,
                    relative_attention_num_buckets=spec.relative_buckets,
                    relative_attention_max_distance=spec.relative_max_distance,
                    pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=BOS, use_cache=False)


def key_mask(x: torch.Tensor) -> torch.Tensor:
    """Additive attention mask (B, 1, 1, L_in): 0 on tokens, the float minimum on <pad>.
    # why: transformers builds this itself from a (B, L) mask, but then calls ``mask.all()`` (a host
    # sync) on every forward; a ready 4-D mask is used as it is."""
    return torch.where(x != PAD, 0.0, torch.finfo(torch.float32).min)[:, None, None, :]


class T5Seq2Seq(nn.Module):
    """T5 over plasticlab token ids: x (B, L_in), y (B, L_out) → logits (B, L_out, V)."""

    def __init__(self, spec: T5Spec, vocab: int):
        super().__init__()
        from transformers import T5ForConditionalGeneration

        self.config = t5_config(spec, vocab)
        self.t5 = T5ForConditionalGeneration(self.config)
        params = inspect.signature(T5ForConditionalGeneration.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        """The forward's key/value cache argument: ``cache`` where transformers has it (``past_key_values``
        is deprecated there, to be removed in 5.40), ``past_key_values`` in the 5.x releases before it."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dec_in = torch.cat([torch.full_like(y[:, :1], BOS), y[:, :-1]], dim=1)  # shift right
        return self.t5(input_ids=x, attention_mask=key_mask(x), decoder_input_ids=dec_in, use_cache=False).logits

    # --- decoding interface (plasticlab.language.decoding) ---
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder output (B, L_in, d_model), additive key mask (B, 1, 1, L_in))."""
        mask = key_mask(x)
        return self.t5.encoder(input_ids=x, attention_mask=mask).last_hidden_state, mask

    def step(self, memory, tokens: torch.Tensor, cache):
        """Logits (B, V) of the token after ``tokens`` (B, 1), reusing the key/value ``cache``."""
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        if cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        hidden, mask = memory
        out = self.t5(encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=tokens,
                      use_cache=True, **{self.cache_arg: cache})
        return out.logits[:, -1], out.cache if self.cache_arg == "cache" else out.past_key_values

    def reorder(self, cache, rows: torch.Tensor):
        cache.reorder_cache(rows)
        return cache

    # --- plasticlab model interface ---
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output averaged over the non-pad positions of x: (B, d_model)."""
        hidden, _ = self.encode(x)
        m = (x != PAD).unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)

    def sensitivity_inputs(self, x: torch.Tensor, y: torch.Tensor):
        """(z, fn) for input sensitivity with respect to the input embeddings (docs/diagnostics.md).

        z (B, L_in·d_model + L_in + L_out) packs each example's input embeddings with two
        constants: its key mask and its decoder input ids; fn(z) = teacher-forced logits
        (B, L_out, V). fn reads the constants through non-differentiable ops, so ∂fn/∂z is zero
        there and ‖∂fn/∂z‖_F = ‖∂logits/∂embeddings‖_F.
        # why: the diagnostics call fn on chunks and (vmapped) single rows of z, so everything an
        # example needs must travel inside its own row."""
        n_in, d = x.shape[1], self.config.d_model
        dec_in = torch.cat([torch.full_like(y[:, :1], BOS), y[:, :-1]], dim=1)
        z = torch.cat([self.t5.shared(x).detach().flatten(1), (x != PAD).float(), dec_in.float()], dim=1)

        def fn(z: torch.Tensor) -> torch.Tensor:
            emb = z[:, : n_in * d].reshape(z.shape[0], n_in, d)
            keep = z[:, n_in * d : n_in * (d + 1)].detach() > 0.5
            dec = z[:, n_in * (d + 1) :].detach().round().long()
            mask = torch.where(keep, 0.0, torch.finfo(torch.float32).min)[:, None, None, :]
            return self.t5(inputs_embeds=emb, attention_mask=mask, decoder_input_ids=dec, use_cache=False).logits

        return z, fn

    def feed_forwards(self) -> list[tuple[str, nn.Module]]:
        """(name, T5DenseActDense) of every encoder block, then every decoder block."""
        enc = [(f"encoder.{i}.ff", blk.layer[-1].DenseReluDense) for i, blk in enumerate(self.t5.encoder.block)]
        dec = [(f"decoder.{i}.ff", blk.layer[-1].DenseReluDense) for i, blk in enumerate(self.t5.decoder.block)]
        return enc + dec

    def unit_layers(self) -> list[UnitLayer]:
        """One layer of d_ff units per feed-forward block: unit i computes act(wi[i] · h) and is read
        by column i of wo. Activations are (B, L, d_ff), unit axis 2."""
        c, f = self.config, self.config.initializer_factor
        return [UnitLayer(name, c.d_ff, [Slice(ff.wi.weight, 0, "normal", f * c.d_model ** -0.5)],
                          [Slice(ff.wo.weight, 1, "normal", f * c.d_ff ** -0.5)], ff.act, act_dim=2)
                for name, ff in self.feed_forwards()]

    def head_slices(self) -> list[Slice]:
        """The output layer (lm_head, rows = vocabulary entries), init N(0, f²). With tied
        embeddings this tensor is also the input embedding."""
        return [Slice(self.t5.lm_head.weight, 0, "normal", self.config.initializer_factor)]
