from pathlib import Path

from paw.config.template import render_template

REPO = Path(__file__).resolve().parents[2]


def test_template_is_generated_from_the_schema():
    """configs/template.yaml must be regenerated when the schema changes: python -m paw.config.template."""
    assert (REPO / "configs" / "template.yaml").read_text() == render_template()
