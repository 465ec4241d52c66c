"""Public testing helpers: Hypothesis strategies that build instances meeting each theorem's
hypotheses, so other projects can property-test their own pursuits."""
