"""The model zoo: model families (GAN, ALI, VAE, AAE, EM) and their pure losses, the stabilisers of
GAN training, the networks and their packing into K seeds at once."""
