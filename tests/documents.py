"""Real documents for upload tests: a PDF with a page, and a PNG and a JPEG that decode,
each made here (uploads are parsed whole, so a header alone is not enough)."""

import io

from PIL import Image

_OBJECTS = (
    b"<</Type/Catalog/Pages 2 0 R>>",
    b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
    b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
)


def pdf(*, pad: int = 0) -> bytes:
    """A one-page A4 PDF with an exact cross-reference table; `pad` bytes of comment
    (at least 2) make it larger."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(_OBJECTS, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    if pad:
        out += b"%" + b"0" * (pad - 2) + b"\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(_OBJECTS) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(_OBJECTS) + 1,
        xref,
    )
    return bytes(out)


def pdf_of_size(size: int) -> bytes:
    """A valid PDF of exactly `size` bytes."""
    pad = size - len(pdf(pad=2)) + 2
    while len(content := pdf(pad=pad)) != size:  # the startxref number may gain a digit
        pad += size - len(content)
    return content


def image(kind: str, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (42, 111, 151)).save(buffer, format=kind)
    return buffer.getvalue()


PDF = pdf()
PNG = image("PNG")
JPEG = image("JPEG")
