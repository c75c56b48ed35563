"""A hand-written PyTorch training loop that uses cadence's schedules, without the Trainer.

One-cycle LR and momentum (Smith & Topin 2018) on MNIST-1D with its reference CNN; runs offline on a CPU
in a few seconds. Everything cadence adds is two schedules and one call to ``set_hyperparams`` per step.

    python examples/plain_loop.py
"""

import torch
import torch.nn.functional as F

from cadence import set_hyperparams
from cadence.data import TensorLoader, load
from cadence.models import create
from cadence.schedules import one_cycle, one_cycle_momentum

torch.manual_seed(0)
data = load("mnist1d")  # 4000 + 1000 signals of length 40, 10 classes (embedded, no download)
loader = TensorLoader(*data.train, batch_size=100, seed=0)
model = create("cnn1d")
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
epochs = 8
total_steps = epochs * len(loader)
lr = one_cycle(max_lr=0.1, total_steps=total_steps)
momentum = one_cycle_momentum(total_steps=total_steps)

step = 0
for epoch in range(epochs):
    for inputs, targets in loader.batches(epoch):
        set_hyperparams(optimizer, step, lr=lr, momentum=momentum)  # values for this optimizer step
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
    with torch.no_grad():
        accuracy = (model(data.test.inputs).argmax(1) == data.test.targets).float().mean().item()
    print(f"epoch {epoch + 1}: lr {lr(step - 1):.4f}  loss {loss.item():.3f}  test accuracy {accuracy:.3f}")
