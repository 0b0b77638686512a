"""mbmrl.train: meta-train recurrent dynamics models across task families (PyTorch); evaluate artifacts."""
