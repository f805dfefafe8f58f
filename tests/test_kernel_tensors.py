"""torch state through a real kernel killed with SIGKILL: tensors, views, a shared tensor, a model
and its optimizer come back equal, sharing what they shared, with requires_grad.

CPU build of torch (no GPU on these machines). The missing-device path is reached through
``SessionManager.device_map``: sending the saved tensors to ``cuda:0``, which this machine does
not have, brings them back on the CPU with a line per variable in the restore summary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernels import FAST_AUTOSAVE, MANAGER, start_kernel, wait_for_autosave

pytest.importorskip("torch")
pytestmark = pytest.mark.kernel

WORK = """\
import torch
torch.manual_seed(0)
big = torch.randn(512, 256)
rows = big[100:200]
alias = big
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
model(torch.randn(8, 16)).sum().backward()
opt.step()
weights = model.state_dict()
leaf = torch.ones(3, requires_grad=True)
exp_avg = opt.state[model[0].weight]['exp_avg']
checks = (float(big.sum()), float(model[0].weight.sum()), float(exp_avg.sum()))
"""

CHECK = (
    "(alias is big, rows.untyped_storage() is big.untyped_storage(),"
    " opt.param_groups[0]['params'][0] is model[0].weight,"
    " weights['0.weight'].untyped_storage() is model[0].weight.untyped_storage(),"
    " leaf.requires_grad, type(model[0].weight).__name__, str(big.device),"
    " (float(big.sum()), float(model[0].weight.sum()),"
    "  float(opt.state[model[0].weight]['exp_avg'].sum())) == checks)"
)


def test_torch_state_survives_sigkill_and_a_missing_device_is_reported(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run(WORK)
        before = kernel.value(CHECK)
        assert before == (True, True, True, True, True, "Parameter", "cpu", True)
        wait_for_autosave(kernel)
        kernel.kill_hard()

        assert kernel.value(CHECK) == before
        # Training goes on from where it was.
        kernel.run("model(torch.randn(8, 16)).sum().backward(); opt.step()")

        kernel.run(f"{MANAGER}.device_map = {{'cpu': 'cuda:0'}}")
        summary = kernel.run("%session restore").text
        assert "Restored on another device" in summary
        assert "big" in summary
        assert "there is no cuda:0 here" in summary
        assert kernel.value("str(big.device), str(model[0].weight.device)") == ("cpu", "cpu")
        assert kernel.value(CHECK)[:5] == (True, True, True, True, True)
