"""Documents: text with paragraphs, markup and untranslatable spans, split into sentences a model can translate."""
