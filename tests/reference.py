"""A slow reference written from the equations of docs/design.md and docs/cells.md, independent of cells/'s code.

It reads the parameters by torch's names and the block order docs/design.md fixes
(LSTM i, f, g, o; GRU r, z, n, then i when untied; MGU f, n), computes every gate as the seed
writes it, W [x_t, h_{t-1}] + b, one sample-free batch step at a time, and stacks the layers.
"""
import torch

LSTM_DEFAULTS = dict(input_gate=True, forget_gate=True, output_gate=True, input_activation="tanh",
                     output_activation="tanh", peepholes=False, coupled_gates=False, coupled_shift=0,
                     gate_recurrence=False)
GRU_DEFAULTS = dict(reset_after=True, reset_gate=True, update_gate=True, tied_gates=True, minimal=False)


def expected_blocks(family: str, flags: dict) -> tuple[str, ...]:
    """The weight blocks the parameter layout (docs/design.md) gives these flags, in order."""
    if family == "rnn":
        return ("h",)
    if family == "lstm":
        f = {**LSTM_DEFAULTS, **flags}
        own_i = f["input_gate"] and not f["coupled_gates"]
        return tuple(b for b, keep in zip("ifgo", (own_i, f["forget_gate"], True, f["output_gate"])) if keep)
    f = {**GRU_DEFAULTS, **flags}
    if f["minimal"]:
        return ("f", "n")
    return tuple(b for b, keep in zip("rzni", (f["reset_gate"], f["update_gate"], True, not f["tied_gates"]))
                 if keep)


def expected_peepholes(flags: dict) -> tuple[str, ...]:
    if not flags.get("peepholes"):
        return ()
    return tuple(g for g in "ifo" if g in expected_blocks("lstm", flags))


def _layer_params(cell, k: int, blocks, sfx=""):
    """block -> (W (H, I+H) acting on [x, h], b_ih (H,), b_hh (H,)); plus peephole rows. sfx:
    '_reverse' for a bidirectional layer's reverse direction (torch's names)."""
    H = cell.hidden_size
    w_ih, w_hh = getattr(cell, f"weight_ih_l{k}{sfx}"), getattr(cell, f"weight_hh_l{k}{sfx}")
    zero = w_ih.new_zeros(len(blocks) * H)
    b_ih, b_hh = getattr(cell, f"bias_ih_l{k}{sfx}", zero), getattr(cell, f"bias_hh_l{k}{sfx}", zero)
    rows = lambda t, j: t[j * H:(j + 1) * H]  # noqa: E731
    P = {b: (torch.cat([rows(w_ih, j), rows(w_hh, j)], 1), rows(b_ih, j), rows(b_hh, j))
         for j, b in enumerate(blocks)}
    w_ch = getattr(cell, f"weight_ch_l{k}{sfx}", None)
    return P, w_ch


def _gate_blocks(cell, k: int, blocks, flags, sfx=""):
    """FGR's weight_gg_l{k} as {gate: {gate at t-1: (H, H)}}, over the gates i, f, o with their own
    block in docs/cells.md's order; None without gate_recurrence."""
    if not flags.get("gate_recurrence"):
        return None
    H, fed = cell.hidden_size, [g for g in "ifo" if g in blocks]
    w = getattr(cell, f"weight_gg_l{k}{sfx}")
    return {g: {s: w[a * H:(a + 1) * H, b * H:(b + 1) * H] for b, s in enumerate(fed)} for a, g in enumerate(fed)}


def _sig(v):
    return 1 / (1 + torch.exp(-v))


def lstm_step(P, peep, x, h, c, f, R=None, last=None, W_hr=None):
    """One step; R: FGR's weight_gg (gate -> gate' -> its (H, H) block), last: the gates at t-1;
    W_hr: torch's projection (proj_size, H) of h, or None."""
    xh = torch.cat([x, h], -1)

    def pre(g):  # W [x, h] + b, plus FGR's Σ_g' R_{g,g'} g'_{t-1}
        fed = sum(last[s] @ R[g][s].T for s in last) if R is not None and last and g in R else 0
        return xh @ P[g][0].T + P[g][1] + P[g][2] + fed
    eye = lambda g, cell: peep[g] * cell if g in peep else 0  # noqa: E731  diagonal peephole
    forget = _sig(pre("f") + eye("f", c)) if f["forget_gate"] else 1
    if f["coupled_gates"]:  # i = 1 - σ(a_f - β), with its own shift β (JANET; 0: CIFG's 1 - f)
        inp = 1 - _sig(pre("f") + eye("f", c) - f["coupled_shift"])
    else:
        inp = _sig(pre("i") + eye("i", c)) if f["input_gate"] else 1
    z = torch.tanh(pre("g")) if f["input_activation"] == "tanh" else pre("g")
    c_new = forget * c + inp * z
    out = _sig(pre("o") + eye("o", c_new)) if f["output_gate"] else 1
    h_new = out * (torch.tanh(c_new) if f["output_activation"] == "tanh" else c_new)
    if W_hr is not None:
        h_new = h_new @ W_hr.T
    gates = {"i": inp, "f": forget, "o": out}
    return (h_new, c_new), {g: gates[g] for g in (R or {})}


def gru_step(P, x, h, f):
    xh = torch.cat([x, h], -1)
    gate = lambda g: _sig(xh @ P[g][0].T + P[g][1] + P[g][2])  # noqa: E731
    I = x.shape[-1]
    W_n, b_in, b_hn = P["n"]
    W_in, W_hn = W_n[:, :I], W_n[:, I:]
    if f["minimal"]:  # MGU: one gate f; r = f, z = 1 - f
        r = gate("f")
        z = 1 - r
    else:
        r = gate("r") if f["reset_gate"] else 1
        z = gate("z") if f["update_gate"] else None
    if f["reset_after"]:
        n = torch.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    else:  # the seed: h' = tanh(W [x, r ⊙ h] + b)
        n = torch.tanh(torch.cat([x, r * h], -1) @ W_n.T + b_in + b_hn)
    if not f["tied_gates"]:
        return z * h + gate("i") * n
    if z is None:
        return n
    seed_z = 1 - z  # the seed's z admits the new state: h_t = (1 - z) ⊙ h_{t-1} + z ⊙ h'
    return (1 - seed_z) * h + seed_z * n


MUT_RAW = {1: "n", 2: "r"}  # the block x_t enters unweighted (docs/cells.md): no rows in weight_ih
MUT_BLIND = {1: "z"}  # the block that does not see h: no rows in weight_hh


def _mut_params(cell, k: int, m: int, sfx=""):
    """Jozefowicz et al.'s MUT{m}, layer k: {block: W_x (H, I)}, {block: W_h (H, H)}, {block: b (H,)},
    blocks r, z, n, with the rows of a block that has no weight left out."""
    H, rows = cell.hidden_size, lambda t, names: {b: t[j * H:(j + 1) * H] for j, b in enumerate(names)}  # noqa: E731
    w_ih, w_hh = getattr(cell, f"weight_ih_l{k}{sfx}"), getattr(cell, f"weight_hh_l{k}{sfx}")
    b = getattr(cell, f"bias_ih_l{k}{sfx}") + getattr(cell, f"bias_hh_l{k}{sfx}")
    return (rows(w_ih, [g for g in "rzn" if g != MUT_RAW.get(m)]), rows(w_hh, [g for g in "rzn" if g != MUT_BLIND.get(m)]),
            rows(b, "rzn"))


def mut_step(m, Wx, Wh, b, x, h):
    """The paper's equations, its z (which weighs the candidate) the logistic of minus our z block's
    pre-activation: h_{t+1} = n ⊙ z + h_t ⊙ (1 - z)."""
    if m == 1:
        z = _sig(-(x @ Wx["z"].T + b["z"]))
        r = _sig(x @ Wx["r"].T + h @ Wh["r"].T + b["r"])
        n = torch.tanh((r * h) @ Wh["n"].T + torch.tanh(x) + b["n"])
    elif m == 2:
        z = _sig(-(x @ Wx["z"].T + h @ Wh["z"].T + b["z"]))
        r = _sig(x + h @ Wh["r"].T + b["r"])
        n = torch.tanh((r * h) @ Wh["n"].T + x @ Wx["n"].T + b["n"])
    else:
        z = _sig(-(x @ Wx["z"].T + torch.tanh(h) @ Wh["z"].T + b["z"]))
        r = _sig(x @ Wx["r"].T + h @ Wh["r"].T + b["r"])
        n = torch.tanh((r * h) @ Wh["n"].T + x @ Wx["n"].T + b["n"])
    return n * z + h * (1 - z)


def reference_forward(cell, x, hx=None):
    """x (T, B, I) -> output (T, B, D·H) and final states [(L·D, B, H), ...], as the equations say;
    D = 2 for a bidirectional cell, whose reverse direction reads the steps from the last."""
    family, flags = type(cell).__name__.lower(), cell.flags
    D = 2 if cell.bidirectional else 1
    L, H, B = cell.num_layers, cell.hidden_size, x.shape[1]
    n_states = 2 if family == "lstm" else 1
    if hx is None:
        hx = (x.new_zeros(L * D, B, getattr(cell, "proj_size", 0) or H),) + tuple(
            x.new_zeros(L * D, B, H) for _ in range(n_states - 1))
    elif isinstance(hx, torch.Tensor):
        hx = (hx,)
    blocks = expected_blocks(family, flags)
    mutation = flags.get("mutation")
    finals = []
    for k in range(L):
        directions = []
        for d in range(D):
            sfx = "_reverse" if d else ""
            P, w_ch = (None, None) if mutation else _layer_params(cell, k, blocks, sfx)
            peep = dict(zip(expected_peepholes(flags), w_ch)) if w_ch is not None else {}
            state = tuple(s[k * D + d] for s in hx)
            R, last = _gate_blocks(cell, k, blocks, flags, sfx), None
            mut = _mut_params(cell, k, mutation, sfx) if mutation else None
            outs = []
            for t in (reversed(range(x.shape[0])) if d else range(x.shape[0])):
                if family == "rnn":
                    W, b_ih, b_hh = P["h"]
                    pre = torch.cat([x[t], state[0]], -1) @ W.T + b_ih + b_hh
                    state = (torch.tanh(pre) if flags["nonlinearity"] == "tanh" else torch.relu(pre),)
                elif family == "lstm":
                    state, last = lstm_step(P, peep, x[t], *state, {**LSTM_DEFAULTS, **flags}, R, last,
                                            getattr(cell, f"weight_hr_l{k}{sfx}", None))
                elif mutation:
                    state = (mut_step(mutation, *mut, x[t], state[0]),)
                else:
                    state = (gru_step(P, x[t], state[0], {**GRU_DEFAULTS, **flags}),)
                outs.append(state[0])
            directions.append(torch.stack(outs[::-1] if d else outs))
            finals.append(state)
        x = torch.cat(directions, -1)
    return x, [torch.stack([f[i] for f in finals]) for i in range(n_states)]
