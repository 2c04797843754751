"""Data for the try-on generator: a synthetic try-on world and a VITON-HD layout loader.

``synth`` renders seeded mannequins and garments and writes them in the VITON-HD folder layout;
``viton`` reads that layout (ours or the real data set) and packs the generator input.
"""

from .synth import (
    AGNOSTIC_GREY,
    GARMENT_KINDS,
    GENERATOR_VERSION,
    KEYPOINT_NAMES,
    PATTERNS,
    GarmentParams,
    PersonParams,
    TryOnSample,
    make_dataset,
    render_garment,
    render_sample,
    render_tryon,
    sample_garment_params,
    sample_person_params,
    sample_seed,
)
from .viton import (
    BODY25_TO_COCO18,
    TRYON_IN_CHANNELS,
    DatasetError,
    TryOnDataset,
    TryOnItem,
    align_cloth,
    load_arrays,
    pose_heatmaps,
    tryon_input,
)

__all__ = [
    "AGNOSTIC_GREY", "GARMENT_KINDS", "GENERATOR_VERSION", "KEYPOINT_NAMES", "PATTERNS",
    "GarmentParams", "PersonParams", "TryOnSample", "make_dataset", "render_garment", "render_sample",
    "render_tryon", "sample_garment_params", "sample_person_params", "sample_seed",
    "BODY25_TO_COCO18", "TRYON_IN_CHANNELS", "DatasetError", "TryOnDataset", "TryOnItem",
    "align_cloth", "load_arrays", "pose_heatmaps", "tryon_input",
]
