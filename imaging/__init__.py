"""Images in, network inputs out: shared by the service, the evaluations and training.

    preprocessing   an upload's bytes -> the digit in MNIST's form (decode, find the ink, fit, centre)
    numbers         an upload of a whole number -> its digits, each in MNIST's form, chosen by recognition
    kernels         the generic image operations both use (Otsu, quantiles, window filters, components)

Pillow and NumPy; nothing here knows about HTTP (``service`` adds it) or trains anything
(``model``, which never imports this package).
"""
