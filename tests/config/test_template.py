from pathlib import Path

from paw.config.template import render_template

REPO = Path(__file__).resolve().parents[2]


def test_template_is_generated_from_the_schema():
    """configs/template.yaml must be regenerated when the schema changes: python -m paw.config.template."""
    assert (REPO / "configs" / "template.yaml").read_text() == render_template()


def test_configuration_reference_is_generated_from_the_schema():
    """docs/configuration.md must be regenerated when the schema changes: python -m paw.config.reference."""
    from paw.config.reference import render_reference

    assert (REPO / "docs" / "configuration.md").read_text() == render_reference()
