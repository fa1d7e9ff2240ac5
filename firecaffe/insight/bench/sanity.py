"""Is a fitted profile usable? A zero coefficient, an infinite bandwidth or large errors say it is not.

A non-negative least-squares fit that sets a coefficient to zero has found no
evidence for that cost (latency, link time, or adding) in the data: usually too
few sizes or rank counts, or measurements dominated by something the model
does not describe (contention, a noisy machine). `bench fit` prints these
problems and writes such a profile only with ``--force``.
"""
MAX_ERROR = 0.30

COEFFICIENTS = (
    ("alpha_s", "alpha (latency per message)"),
    ("beta_s_per_byte", "beta (link time per byte)"),
    ("gamma_s_per_byte", "gamma (time to add a byte)"),
)
# Below these a coefficient is zero in all but rounding (a least-squares solver leaves 1e-19 s
# rather than 0): no message costs under a nanosecond, no link or adder moves a petabyte a second.
NEGLIGIBLE = {"alpha_s": 1e-9, "beta_s_per_byte": 1e-15, "gamma_s_per_byte": 1e-15}


def problems(profile, rows, max_error=MAX_ERROR):
    """Sentences describing what is degenerate about ``profile``; ``rows`` are ``model.errors`` rows."""
    found = [f"{label} was fitted to 0: the model would make it free" for key, label in COEFFICIENTS
             if profile[key] < NEGLIGIBLE[key]]
    if profile["beta_s_per_byte"] < NEGLIGIBLE["beta_s_per_byte"]:
        found.append("the fitted bandwidth is infinite")
    bad = [(abs(error), record) for record, _, error in rows if abs(error) > max_error]
    if bad:
        worst, record = max(bad, key=lambda item: item[0])
        found.append(f"{len(bad)} of {len(rows)} points are off by more than {max_error:.0%} (worst "
                     f"{worst:.0%}: {record['comm']}, {record['bytes']} bytes, {record['ranks']} ranks)")
    return found
