"""Backbones: encoder and fusion registries, the multimodal model, and ``build_model``."""

from synib_core.backbones.encoders import (
    ENCODERS,
    CNNEncoder,
    CNNEncoderConfig,
    Encoder,
    GRUEncoder,
    IdentityEncoder,
    MLPEncoder,
    MLPEncoderConfig,
    SequenceEncoderConfig,
    TransformerSeqEncoder,
)
from synib_core.backbones.fusions import (
    FUSIONS,
    ConcatMLPFusion,
    Fusion,
    FusionConfig,
    SumUnimodalFusion,
    TransformerFusion,
)
from synib_core.backbones.model import (
    ModelSpecLike,
    MultimodalModel,
    build_model,
    resolved_feature_norm,
    to_probs,
)
from synib_core.backbones.pretrained import (
    EncoderChoice,
    PretrainedBackbone,
    extract_features,
    load_pretrained,
    set_trainable,
)

__all__ = [
    "ENCODERS",
    "FUSIONS",
    "CNNEncoder",
    "CNNEncoderConfig",
    "ConcatMLPFusion",
    "Encoder",
    "EncoderChoice",
    "Fusion",
    "FusionConfig",
    "GRUEncoder",
    "IdentityEncoder",
    "MLPEncoder",
    "MLPEncoderConfig",
    "ModelSpecLike",
    "MultimodalModel",
    "PretrainedBackbone",
    "SequenceEncoderConfig",
    "SumUnimodalFusion",
    "TransformerFusion",
    "TransformerSeqEncoder",
    "build_model",
    "extract_features",
    "load_pretrained",
    "resolved_feature_norm",
    "set_trainable",
    "to_probs",
]
