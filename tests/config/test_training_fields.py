from paw.config.gen_training_fields import current_fields
from paw.config.training_fields import training_fields


def test_table_matches_installed_transformers():
    """paw validates pass-through keys from a table; regenerate it when transformers changes
    (python -m paw.config.gen_training_fields)."""
    assert training_fields() == current_fields()
