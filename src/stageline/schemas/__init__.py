"""Request and response models, named as on the seed pages."""
