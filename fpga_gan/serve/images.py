"""Images in and out of the web API: uploads decoded with limits, results encoded as PNG data URLs.

An upload is untrusted: it may be no image at all, an image format PIL half-supports, a
decompression bomb or a 40,000-pixel-wide PNG. :func:`decode_image` refuses each with a message
naming what is wrong, before anything reaches an accelerator.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["ALLOWED_FORMATS", "MAX_IMAGE_SIDE", "ImageError", "decode_image", "encode_png", "garment_mask",
           "png_data_url", "resize"]

#: Formats a browser sends for photos and garments; anything else is refused by name.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
#: Largest width or height of an upload (they are resized to 64x64 or so anyway).
MAX_IMAGE_SIDE = 4096
#: Near-white pixels of an in-shop photo count as background for the garment's mask.
_BACKGROUND_LEVEL = 235


class ImageError(ValueError):
    """An upload that is not an image the server takes; the message says why."""


def decode_image(data: str, what: str = "image") -> np.ndarray:
    """A base64 image (a ``data:image/...;base64,`` URL or bare base64) as uint8 RGB (H, W, 3).

    Transparent pixels are laid on white, as an in-shop photo's background is.
    """
    if not isinstance(data, str) or not data:
        raise ImageError(f"{what}: expected a base64 image (a data: URL), got {type(data).__name__}")
    if data.startswith("data:"):
        header, _, data = data.partition(",")
        if not header.endswith(";base64"):
            raise ImageError(f"{what}: only base64 data URLs are accepted")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"{what}: not valid base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.format not in ALLOWED_FORMATS:
                raise ImageError(f"{what}: {img.format or 'unknown'} images are not accepted; "
                                 f"send one of {', '.join(ALLOWED_FORMATS)}")
            if max(img.size) > MAX_IMAGE_SIDE:
                raise ImageError(f"{what}: {img.width}x{img.height} pixels is larger than "
                                 f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}")
            img.load()
            rgba = img.convert("RGBA")
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise ImageError(f"{what}: not an image file (or a damaged one)") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), np.uint8).copy()


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) at ``size`` = (H, W): area-averaged when shrinking, bicubic when growing."""
    H, W = size
    if image.shape[:2] == (H, W):
        return image
    img = Image.fromarray(image)
    method = Image.BOX if img.width > W else Image.BICUBIC
    return np.asarray(img.resize((W, H), method), np.uint8).copy()


def garment_mask(garment: np.ndarray) -> np.ndarray:
    """The mask (uint8 0/255) of an uploaded in-shop garment: every pixel that is not near-white.

    The synthetic world's and VITON-HD's in-shop photos lie on white, so this is the mask their
    own ``cloth-mask`` images hold.
    """
    return np.where(garment.min(axis=2) < _BACKGROUND_LEVEL, 255, 0).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W, 3) as PNG bytes (lossless: the page shows the exact output codes)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def png_data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")
