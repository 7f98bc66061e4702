"""The contrastive loss equals its naive (M x M) definition; the chunked CE equals the plain one."""

import torch
import torch.nn.functional as F

from sicsrec.model.losses import content_infonce, full_softmax_ce


def _naive_infonce(user, content, targets, tau, remove):
    c = content[targets]  # (M, d) each sample's target content
    logits = user @ c.T / tau  # (M, M)
    same = targets[:, None] == targets[None, :]
    eye = torch.eye(len(targets), dtype=torch.bool)
    if remove:
        logits = logits.masked_fill(same & ~eye, float("-inf"))
    else:
        logits = logits.masked_fill(same & ~eye, 0.0)
    return F.cross_entropy(logits, torch.arange(len(targets)))


def test_infonce_matches_the_pairwise_definition_with_repeated_targets():
    torch.manual_seed(0)
    user = F.normalize(torch.randn(12, 8), dim=-1)
    content = F.normalize(torch.randn(6, 8), dim=-1)
    targets = torch.tensor([1, 2, 2, 3, 5, 5, 5, 1, 4, 3, 2, 1])
    for remove in (True, False):
        ours = content_infonce(user, content, targets, 0.05, remove)
        assert torch.allclose(ours, _naive_infonce(user, content, targets, 0.05, remove), atol=1e-5)
    assert not torch.allclose(
        content_infonce(user, content, targets, 0.05, True), content_infonce(user, content, targets, 0.05, False)
    )


def test_chunked_ce_matches_plain_ce_and_its_gradient():
    torch.manual_seed(0)
    user = torch.randn(50, 8, requires_grad=True)
    items = torch.randn(30, 8, requires_grad=True)
    tgt = torch.randint(1, 30, (50,))
    plain = full_softmax_ce(user, items, tgt, 2.0, chunk=1000)
    g_plain = torch.autograd.grad(plain, [user, items])
    chunked = full_softmax_ce(user, items, tgt, 2.0, chunk=7)
    g_chunked = torch.autograd.grad(chunked, [user, items])
    assert torch.allclose(plain, chunked, atol=1e-5)
    for a, b in zip(g_plain, g_chunked):
        assert torch.allclose(a, b, atol=1e-5)
    logits = user @ items.T * 2.0
    logits[:, 0] = float("-inf")
    assert torch.allclose(plain, F.cross_entropy(logits, tgt), atol=1e-5)
