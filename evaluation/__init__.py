"""Evaluation on handwriting that is not MNIST's, as people would upload it.

``handwriting`` loads independent digit sources (each shipped inside an
installed package), ``uploads`` renders a digit as the files people send
(canvas drawings, scans, phone photos, ...), and ``independent`` runs a
model over both through the service's own preprocessing. ``train.py
evaluate`` prints the result; the model card shows it. Nothing here is used
to train or to choose a model.
"""
