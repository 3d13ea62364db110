"""File names for adapters that write one file per order (file_drop, sftp): the operator's
template, checked once when the binding is saved, and order values made safe to put in a name."""
import re
import string

# Every template names the order and the action, so two deliveries never overwrite each other.
REQUIRED_PLACEHOLDERS = ("order_id", "action")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name_problem(template, placeholders, temp_suffixes=(".tmp",)):
    """Why a file-name template is unusable, or None.

    `placeholders` are the names the adapter fills in; a name that starts with a dot or ends like a
    temporary file (`temp_suffixes`) is refused, because receivers skip such files as unfinished.
    """
    if not template:
        return "Enter a file name template."
    if "/" in template or "\\" in template or "\x00" in template:
        return "The template is a file name, not a path: no '/' or '\\'."
    if template.startswith("."):
        return "The file name may not start with a dot (temporary files do)."
    if template.lower().endswith(tuple(temp_suffixes)):
        return f"The file name may not end like a temporary file ({', '.join(temp_suffixes)})."
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"Invalid template: {exc}."
    used = set()
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in placeholders:
            return f"Unknown placeholder {{{field}}}; use " + ", ".join(f"{{{p}}}" for p in sorted(placeholders)) + "."
        if spec or conversion:
            return f"Placeholder {{{field}}} takes no format options."
        used.add(field)
    missing = [p for p in REQUIRED_PLACEHOLDERS if p not in used]
    if missing:
        return "The template must contain " + " and ".join(f"{{{p}}}" for p in missing) + " so files never overwrite each other."
    return None


def safe_part(value):
    """`value` as one safe piece of a file name: letters, digits, '.', '_', '-'; at most 100 characters."""
    value = _UNSAFE.sub("_", str(value or ""))
    return "_" if value in ("", ".", "..") else value[:100]
