"""How services are named (ide/names.py)."""

import pytest

from ide.names import service_label


@pytest.mark.parametrize(("service", "label", "subject"), [
    ("ide", "VS Code", "VS Code"),
    ("desktop", "Desktop", "The desktop"),
    ("preview-3000", "Preview :3000", "The preview on port 3000"),
    ("mystery", "mystery", "The service 'mystery'"),
])
def test_a_service_has_one_name_for_tabs_and_one_for_sentences(service, label, subject):
    assert service_label(service) == label
    assert service_label(service, "subject") == subject
