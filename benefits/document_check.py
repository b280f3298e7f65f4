"""Parse one uploaded document, in a child process that benefits.documents starts.

Run as a script: `python -I document_check.py MIME MEMORY_MB MAX_PIXELS`, the file on
standard input; it prints `ok` or a short reason why the file does not parse, and
exits 0 either way. The process caps its own address space first, so a file built to
exhaust memory ends here as a MemoryError; the parent kills it when it runs too long.
Nothing here imports Django: the child starts with the libraries it needs and no more.
"""

import io
import logging
import resource
import sys
import warnings


def _check_pdf(data: bytes) -> None:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    # An owner password alone (printing or copying restricted) opens with an empty one.
    if reader.is_encrypted and not reader.decrypt(""):
        raise ValueError("password-protected")
    if len(reader.pages) == 0:
        raise ValueError("no pages")
    for page in reader.pages:  # every page object resolves, with its size
        if page.mediabox.width <= 0 or page.mediabox.height <= 0:
            raise ValueError("a page without a size")


def _check_image(data: bytes, mime: str, max_pixels: int) -> None:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels
    # Pillow only warns between the limit and twice it: past the limit is refused here.
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    expected = {"image/png": "PNG", "image/jpeg": "JPEG"}[mime]
    with Image.open(io.BytesIO(data), formats=[expected]) as image:
        image.verify()  # the structure (PNG: every chunk's checksum)
    with Image.open(io.BytesIO(data), formats=[expected]) as image:
        image.load()  # the pixels decode, to the last row


def check(data: bytes, mime: str, max_pixels: int) -> None:
    """Raise if the content does not parse as the type it was detected as."""
    if mime == "application/pdf":
        _check_pdf(data)
    else:
        _check_image(data, mime, max_pixels)


def main() -> None:
    mime, memory_mb, max_pixels = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logging.disable(logging.CRITICAL)  # pypdf logs what it repairs; the verdict is enough
    warnings.simplefilter("ignore")
    data = sys.stdin.buffer.read()
    try:
        check(data, mime, max_pixels)
    except MemoryError:
        verdict = "too large to read"
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the verdict
        verdict = f"{type(exc).__name__}"
    else:
        verdict = "ok"
    sys.stdout.write(verdict)


if __name__ == "__main__":
    main()
