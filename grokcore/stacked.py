"""The batched step of a pack: K models' parameters stacked along a leading member axis.

One model definition serves all members: ``torch.func.functional_call`` runs the task's loss
(the exact fast path, ``Transformer.forward_last``) with a member's parameters, and
``torch.vmap`` runs it for every member at once, so a step is one batched forward, one loss
(the sum of the members' own losses), one backward and one AdamW step on the stacked tensors.

Why this trains each member as its own run:

* The loss is the sum of the members' losses, each the mean over its own examples in its own
  loss dtype; the gradient of a sum with respect to member i's parameters is the gradient of
  member i's loss alone.
* AdamW is elementwise: each element is updated from its own gradient and moments, and the
  step count, lr, betas, eps and weight decay are shared, so one stacked parameter is K
  independent optimizations (``tests/test_pack.py`` checks it against K separate AdamWs).
* What is not elementwise is taken per member: the gradient norm, the orthogonal gradient
  (``StackedGradientTransform``); Grokfast's filters are elementwise and run on the stack.

A member's own Trainer keeps its own model, optimizer, scheduler and gradient transform; they are
written from the stack (:meth:`StackedSteps.sync`) before the member is evaluated or saved, so
its evaluation, progress measures and checkpoint are those of a single run. Members are taken
back from their trainers (:meth:`StackedSteps.__init__`) when the pack starts, resumes or drops
the members that stopped: the three are one code path.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from grokcore.optim import GrokfastEMA, GrokfastMA, adamw, make_scheduler


class _MemberLoss(nn.Module):
    """``objective.loss(model, x, y)`` as a module's forward, so functional_call can run it."""

    def __init__(self, model: nn.Module, objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.objective.loss(self.model, inputs, labels)


class _MemberLogits(nn.Module):
    """``model.forward_last(x)`` as a module's forward, so functional_call can run it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.forward_last(inputs)


def batched_eval_problem(members: Sequence[Any]) -> str | None:
    """Why these members' evaluations cannot be computed on the stack (None: they can)."""
    from grokcore.objectives import LastPosition
    from grokcore.tasks.base import TaskBase

    first = members[0]
    if type(first.objective) is not LastPosition or first.objective.balanced:
        return "the objective is not plain last-position accuracy"
    if getattr(type(first.task), "extra_metrics", None) is not TaskBase.extra_metrics:
        return f"task {first.cfg.task} adds metrics of its own to each evaluation"
    for m in members:
        if m.test_x.shape != first.test_x.shape or list(m.test_groups) != list(first.test_groups):
            return "the members' test sets differ in size or groups"
    return None


class StackedSteps:
    """The batched step of the members ``members`` (Trainers with the same shapes and optimizer
    settings, see ``grokcore.pack``), built from their current state."""

    def __init__(self, members: Sequence[Any]):
        first = members[0]
        self.members = list(members)
        # functional_call swaps the template's tensors for the stacked ones during the call.
        self.loss_module = _MemberLoss(copy.deepcopy(first.model), first.objective)
        named = list(first.model.named_parameters())
        self.trained = [name for name, p in named if p.requires_grad]
        self.fixed = [name for name, p in named if not p.requires_grad]
        self.buffers = {f"model.{n}": b for n, b in self.loss_module.model.named_buffers()}
        with torch.no_grad():
            self.params = {n: torch.stack([_param(m, n).detach() for m in members]).clone()
                           for n in self.trained + self.fixed}
        for name in self.trained:
            self.params[name].requires_grad_(True)
        self.train_x = torch.stack([m.train_x for m in members])
        self.train_y = torch.stack([m.train_y for m in members])
        self.optimizer = adamw([self.params[n] for n in self.trained], first.cfg)
        # As a trainer resumes: the scheduler first (it sets the lr of its first epoch), then
        # the optimizer's state and lr, then the scheduler's count.
        self.scheduler = make_scheduler(self.optimizer, first.cfg)
        self.optimizer.load_state_dict(_stacked_optimizer_state(members, len(self.trained)))
        self.scheduler.load_state_dict(first.scheduler.state_dict())
        self.grad_transform = StackedGradientTransform.for_members(
            [self.params[n] for n in self.trained], members)
        self._losses = vmap(self._member_loss, in_dims=(0, 0, 0))
        # Evaluations on the stack (one batched forward for all members, one host sync for all
        # their numbers) where the members allow it, else each member evaluates its own model.
        self.batched_eval = batched_eval_problem(members) is None
        if self.batched_eval:
            self.logits_module = _MemberLogits(self.loss_module.model)
            self._logits = vmap(self._member_logits, in_dims=(0, 0))
            self._loss_of = vmap(first.objective.loss_fn, in_dims=(0, 0))
            self.test_x = torch.stack([m.test_x for m in members])
            self.test_y = torch.stack([m.test_y for m in members])
            # each member's test groups as indices (the masks never change: the host syncs of
            # boolean indexing happen here once, not at every evaluation); None: empty
            self.group_rows = [{name: (mask.nonzero().squeeze(1) if bool(mask.any()) else None)
                                for name, mask in m.test_groups.items()} for m in members]

    def _member_loss(self, params: dict[str, torch.Tensor], inputs: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
        named = {f"model.{n}": t for n, t in params.items()}
        return functional_call(self.loss_module, (named, self.buffers), (inputs, labels))

    def _member_logits(self, params: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        named = {f"model.{n}": t for n, t in params.items()}
        return functional_call(self.logits_module, (named, self.buffers), (inputs,))

    @torch.no_grad()
    def evaluate(self, slots: Sequence[int]) -> list[dict[str, float]]:
        """The evaluation rows of members ``slots`` (epoch left to the member), computed on the
        stack: the numbers ``Trainer.evaluate`` computes on each member's own model, in the same
        order and the same dtypes (equal up to the rounding of a batched matrix product; a
        test checks it), for all members in one batched forward and one host sync."""
        first = self.members[0]
        params = {n: t.detach() for n, t in self.params.items()}
        train = self._logits(params, self.train_x)  # [members, n_train, classes]
        test = self._logits(params, self.test_x)  # [members, n_test, classes]
        grads = [self.params[n].grad for n in self.trained if self.params[n].grad is not None]
        if self.grad_transform is not None and self.grad_transform.raw_grad_norm is not None:
            grad_norm = self.grad_transform.raw_grad_norm
        elif grads:
            grad_norm = member_norms(grads)
        else:
            grad_norm = torch.zeros(len(self.members), dtype=torch.float64, device=train.device)
        z = train.to(first.loss_dtype)  # softmax collapse: grokcore.signals
        collapse = ((z - z.max(dim=-1, keepdim=True).values).exp().sum(dim=-1) == 1.0)
        sq = [(self.params[n].detach().double() ** 2).flatten(1).sum(dim=1) for n in
              [name for name, _ in first.model.named_parameters()]]
        columns = {
            "train_loss": self._loss_of(train, self.train_y),
            "test_loss": self._loss_of(test, self.test_y),
            "train_acc": (train.argmax(dim=-1) == self.train_y).double().mean(dim=1),
            "test_acc": (test.argmax(dim=-1) == self.test_y).double().mean(dim=1),
            "grad_norm": grad_norm,
            "sum_sq_weights": torch.stack(sq).sum(dim=0),
            "unembed_norm": torch.linalg.vector_norm(
                self.params["W_U"].detach().double().flatten(1), dim=1),
            "softmax_collapse": collapse.double().mean(dim=1),
        }
        groups = self._group_columns(test, slots)
        names = list(columns)
        values = torch.stack([columns[n][list(slots)].double() for n in names]).T.tolist()
        lr = self.optimizer.param_groups[0]["lr"]
        rows = []
        for j, slot in enumerate(slots):
            row = dict(zip(names, values[j]))
            row["lr"] = lr
            row.update(groups[j])
            rows.append(row)
        return rows

    def _group_columns(self, test: torch.Tensor, slots: Sequence[int]) -> list[dict[str, Any]]:
        """Each member's (loss, accuracy) on its test groups (``Trainer.test_groups``), None
        where a group is empty: the masks differ between members, so member by member, with
        the numbers left on the device until one sync."""
        first, out, pending = self.members[0], [], []
        for slot in slots:
            row = {}
            for name, rows in self.group_rows[slot].items():
                if rows is None:
                    row[f"test_loss_{name}"] = row[f"test_acc_{name}"] = None
                    continue
                logits, labels = test[slot].index_select(0, rows), self.test_y[slot][rows]
                pending.append((row, name, first.objective.loss_fn(logits, labels),
                                (logits.argmax(dim=-1) == labels).double().mean()))
            out.append(row)
        if pending:
            numbers = torch.stack([torch.stack([loss.double(), acc]) for *_, loss, acc in
                                   pending]).tolist()
            for (row, name, _, _), (loss, acc) in zip(pending, numbers):
                row[f"test_loss_{name}"], row[f"test_acc_{name}"] = loss, acc
        return out

    def step(self) -> torch.Tensor:
        """One epoch of every member: their losses before the step, [members], not synced."""
        self.optimizer.zero_grad(set_to_none=True)
        losses = self._losses(self.params, self.train_x, self.train_y)
        losses.sum().backward()
        if self.grad_transform is not None:
            self.grad_transform()
        self.optimizer.step()
        self.scheduler.step()
        return losses.detach()

    @torch.no_grad()
    def sync(self, slot: int, full: bool = True) -> None:
        """Write member ``slot``'s part of the stack into its own trainer: weights, gradients,
        learning rate and raw gradient norm (what an evaluation reads), and with ``full`` its
        optimizer moments, scheduler and gradient-transform state (what a checkpoint holds), so
        that what it evaluates, measures and saves is its own run's state."""
        member = self.members[slot]
        own = dict(member.model.named_parameters())
        for name in self.trained:
            own[name].copy_(self.params[name][slot])
            grad = self.params[name].grad
            own[name].grad = None if grad is None else grad[slot].clone()
        for group in member.optimizer.param_groups:
            group["lr"] = self.optimizer.param_groups[0]["lr"]
        if self.grad_transform is not None and not full:
            norm = self.grad_transform.raw_grad_norm
            member.grad_transform.raw_grad_norm = None if norm is None else norm[slot]
        if not full:
            return
        stacked = self.optimizer.state_dict()
        member.optimizer.load_state_dict({
            "state": {i: {k: (v[slot] if k != "step" else v).clone() for k, v in s.items()}
                      for i, s in stacked["state"].items()},
            "param_groups": stacked["param_groups"]})
        member.scheduler.load_state_dict(self.scheduler.state_dict())
        if self.grad_transform is not None:
            self.grad_transform.sync(slot, member.grad_transform)


def _param(member, name: str) -> torch.Tensor:
    return member.model.get_parameter(name)


def _stacked_optimizer_state(members: Sequence[Any], n_params: int) -> dict[str, Any]:
    """The AdamW state of the stack: each member's moments stacked; the step count and the
    param groups (lr after the warm-up so far) are the same in every member of a pack."""
    states = [m.optimizer.state_dict() for m in members]
    stacked = {}
    for i in range(n_params):
        per_member = [s["state"].get(i) for s in states]
        if per_member[0] is None:  # no step taken yet
            continue
        stacked[i] = {k: (torch.stack([s[k] for s in per_member]) if k != "step"
                          else per_member[0][k].clone()) for k in per_member[0]}
    return {"state": stacked, "param_groups": states[0]["param_groups"]}


# ---- gradient transforms, per member -------------------------------------------------------------
def member_norms(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each member's L2 norm over all its gradient tensors, in float64: [members]."""
    per_tensor = [torch.linalg.vector_norm(g.double().flatten(1), dim=1) for g in grads]
    return torch.linalg.vector_norm(torch.stack(per_tensor), dim=0)


@torch.no_grad()
def orthogonalize_members_(weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    """``grokcore.optim.orthogonalize_`` for each member's own tensors: per member and tensor,
    g <- (g - (w.g / w.w) w) * |g| / |g - (w.g / w.w) w|."""
    for w, g in zip(weights, grads):
        w, flat = w.detach().flatten(1), g.flatten(1)
        tiny = torch.finfo(w.dtype).tiny
        ww = (w * w).sum(dim=1, keepdim=True)
        coef = torch.where(ww > 0, (w * flat).sum(dim=1, keepdim=True) / ww.clamp(min=tiny), 0)
        perp = flat - coef * w
        norm_g = torch.linalg.vector_norm(flat, dim=1, keepdim=True)
        norm_perp = torch.linalg.vector_norm(perp, dim=1, keepdim=True)
        scale = torch.where(norm_perp > 0, norm_g / norm_perp.clamp(min=tiny), 0)
        g.copy_((perp * scale).view_as(g))


class StackedGradientTransform:
    """``grokcore.optim.GradientTransform`` on stacked gradients: ``raw_grad_norm`` per member
    ([members]), Grokfast's elementwise filters on the stack, the orthogonal gradient per member."""

    def __init__(self, params: Sequence[torch.Tensor], grokfast, ortho: bool):
        self.params = list(params)
        self.grokfast = grokfast
        self.ortho = ortho
        self.raw_grad_norm: torch.Tensor | None = None

    @classmethod
    def for_members(cls, params: Sequence[torch.Tensor],
                    members: Sequence[Any]) -> "StackedGradientTransform | None":
        """The stack's transform with the members' filter state stacked; None without one."""
        own = [m.grad_transform for m in members]
        if own[0] is None:
            return None
        grokfast = copy.deepcopy(own[0].grokfast)  # its settings; its state is stacked below
        if isinstance(grokfast, GrokfastEMA) and own[0].grokfast.mu is not None:
            grokfast.mu = [torch.stack(ts) for ts in zip(*(t.grokfast.mu for t in own))]
        elif isinstance(grokfast, GrokfastMA) and own[0].grokfast.buffer is not None:
            grokfast.buffer = [torch.stack(ts, dim=1) for ts in zip(*(t.grokfast.buffer for t in own))]
            grokfast.total = [torch.stack(ts) for ts in zip(*(t.grokfast.total for t in own))]
        return cls(params, grokfast, own[0].ortho)

    def __call__(self) -> None:
        grads = [p.grad for p in self.params]
        self.raw_grad_norm = member_norms(grads)
        if self.grokfast is not None:
            self.grokfast(grads)
        if self.ortho:
            orthogonalize_members_(self.params, grads)

    def sync(self, slot: int, own) -> None:
        """Write member ``slot``'s filter state and raw gradient norm into its own transform."""
        own.raw_grad_norm = None if self.raw_grad_norm is None else self.raw_grad_norm[slot]
        fast = self.grokfast
        if isinstance(fast, GrokfastEMA):
            own.grokfast.mu = None if fast.mu is None else [m[slot].clone() for m in fast.mu]
        elif isinstance(fast, GrokfastMA):
            if fast.buffer is not None:
                own.grokfast.buffer = [b[:, slot].clone() for b in fast.buffer]
                own.grokfast.total = [t[slot].clone() for t in fast.total]
            own.grokfast.count, own.grokfast.pos = fast.count, fast.pos
