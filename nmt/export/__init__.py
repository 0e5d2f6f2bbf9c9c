"""Writing checkpoints in other toolkits' formats, and translating with them: CTranslate2 (`ctranslate2` extra)."""
