"""torch-fidelity's Inception-v3 with random weights (as tests/test_images.py builds it): the FID
pipeline runs exactly, its numbers mean nothing. Used only when the real weights cannot be fetched."""
import sys, torch
from vi_sweeps.metrics import inception_class
inception = inception_class()
class Random(inception):
    def load_state_dict(self, *a, **k):
        return None
dest = sys.argv[1]
torch.save({}, dest + ".empty")
torch.manual_seed(0)
net = Random("inception-v3-compat", ["2048"], feature_extractor_weights_path=dest + ".empty")
torch.save(net.state_dict(), dest)
print("random Inception weights:", dest)
