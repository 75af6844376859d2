"""Neural models of user behaviour: item-sequence transformers (and heads built on them)."""
