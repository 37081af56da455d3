"""E-mail messages (.eml): headers and the text body; attachments are not read."""

from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser

from ingest.document import Block, Converted
from ingest.errors import Encrypted, NoTextLayer
from ingest.pandoc import blocks_from_ast, run_pandoc
from ingest.text import decode_text, split_paragraphs

_ENCRYPTED_TYPES = {"application/pkcs7-mime", "application/x-pkcs7-mime", "multipart/encrypted"}


def convert_email(data: bytes, name: str, *, timeout_s: float, memory_mb: int) -> Converted:
    """Subject as the heading; From/To/Date as the first block; the plain or HTML body."""
    if data.count(0) > len(data) // 4 or data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        data = decode_text(data, name).encode()  # a message saved as UTF-16
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    if message.get_content_type() in _ENCRYPTED_TYPES:
        raise Encrypted(f"{name}: the message is encrypted (S/MIME or PGP) — save a decrypted copy")
    subject = " ".join(str(message.get("subject", "") or "").split())
    path = (subject,) if subject else ()
    header = "\n".join(
        f"{field}: {message[field]}" for field in ("From", "To", "Cc", "Date") if message[field]
    )
    blocks = [Block(text, path) for text in (subject, header) if text]
    body = message.get_body(preferencelist=("plain", "html"))
    text = _body_text(body) if body is not None else ""
    if not text.strip():
        raise NoTextLayer(f"{name}: the message has no text body")
    if body is not None and body.get_content_subtype() == "html":
        ast = run_pandoc(["-f", "html"], text.encode(), name, timeout_s, memory_mb)
        blocks += [Block(b.text, path) for b in blocks_from_ast(ast)]
    else:
        blocks += [Block(p, path) for p in split_paragraphs(text.replace("\r\n", "\n"))]
    return Converted("eml", blocks, title=subject)


def _body_text(part: MIMEPart) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError, ValueError):  # unknown or lying charset
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
