# PyTorch side of trainer/bench/vs-torch.ts: the same student, losses (task CE + T^2 KL at T=4), batch and Adam
# as our `sum` step. Reads "<threads> <model> <batch> <steps>" lines on stdin, answers "<wall ms/step> <CPU ms/step>"
# (CPU time of the process: all threads).
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """The residual block of trainer/src/backend/probe.ts: conv3x3-ReLU-conv3x3 + shortcut, ReLU (no BN)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1))
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


def resnet():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, 1, 1), nn.ReLU(),
        Block(32, 32, 1), Block(32, 64, 2), Block(64, 128, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )


def student(arch):
    if arch == "resnet":
        return resnet()
    if arch == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
        )
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


models = {}


def run(threads, arch, batch, steps):
    torch.set_num_threads(threads)
    key = (arch, batch)
    if key not in models:
        torch.manual_seed(0)
        model = student(arch)
        shape = (3, 32, 32) if arch == "resnet" else (1, 28, 28)
        data = [(torch.rand(batch, *shape), torch.randint(0, 10, (batch,)), 3 * torch.randn(batch, 10)) for _ in range(4)]
        models[key] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), data)
    model, opt, data = models[key]
    t = 4.0

    def step(i):
        x, y, teacher = data[i % len(data)]
        logits = model(x)
        task = F.cross_entropy(logits, y)
        kd = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher / t, -1), reduction="batchmean", log_target=True)
        loss = 0.5 * task + 0.5 * t * t * kd
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(0)
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(i)
    return (time.perf_counter() - start) * 1000 / steps, (time.process_time() - cpu_start) * 1000 / steps


print(f"ready torch {torch.__version__}", flush=True)
for line in sys.stdin:
    threads, arch, batch, steps = line.split()
    wall, cpu = run(int(threads), arch, int(batch), int(steps))
    print(f"{wall:.3f} {cpu:.3f}", flush=True)
