"""mbmrl.export: trained checkpoint -> verified ONNX artifact; the console script, quickstart and bench."""
