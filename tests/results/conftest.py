"""What the result-kind tests share: the names docs/file-format.md gives each kind's section,
and the names a writer puts into a group."""

import re
from pathlib import Path

import h5py
import pytest

FORMAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "file-format.md"


class FormatDoc:
    def section(self, kind: str) -> str:
        """The text of the ``### `<kind>/...`` section."""
        text = FORMAT_DOC.read_text(encoding="utf-8")
        match = re.search(rf"^### `{kind}/.*?(?=^### |^## |\Z)", text, flags=re.S | re.M)
        assert match, f"docs/file-format.md has no section for {kind}/"
        return match.group(0)

    def names(self, kind: str) -> set[str]:
        """Every backticked name of the section, split at '/', ',' and blanks."""
        quoted = re.findall(r"`([^`]+)`", self.section(kind).split("\n", 1)[1])
        return {p for q in quoted for p in re.split(r"[/,\s]+", q) if p}

    @staticmethod
    def written_names(group: h5py.Group, skip_below: tuple[str, ...] = ()) -> set[str]:
        """Names of the attributes, datasets and groups in ``group`` (not below ``skip_below``)."""
        names = set(group.attrs)

        def visit(name, obj):
            if any(f"{folder}/" in name for folder in skip_below):
                return
            names.add(name.rsplit("/", 1)[-1])
            names.update(obj.attrs)

        group.visititems(visit)
        return names


@pytest.fixture(scope="session")
def format_doc() -> FormatDoc:
    return FormatDoc()
