"""The real/bogus classifier: simulated triplets, the CNN, Ray Train fitting, evaluation, export.

`dataset` runs the site's own difference-imaging path on simulated pairs with injected
transients and artefacts and labels every detection; `net` is the CNN; `train` fits it with the
quality model's Ray Train machinery; `evaluate` measures it on held-out pairs and on real ZTF
alerts against ZTF's own `drb` scores; `export` writes the shipped TorchScript model.
"""
