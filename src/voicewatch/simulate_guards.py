"""Traffic that reaches the guard rails: provider outages, bursts, and the demo's script.

Why: with the offline defaults nothing ever trips a guard rail, so staff would
never see one work. ``queue_burst`` sends many notes for one organization at
once, so its rate limit defers them. ``outages.start_outage`` makes every
call to a service fail for a while (shared through the database, so a
separate worker sees it). ``GuardScript`` is what ``voicewatch
demo`` does in its first minutes so that each guard-rail event is seen: a
small budget that fills, a short outage, one burst over a lowered limit, and
then (as staff would) the budget raised again. Time is a parameter: ``step``
takes the elapsed ms, so a test can run three minutes in no time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from voicewatch.pipeline import budgets, outages, ratelimit
from voicewatch.pipeline.intake import submit_note
from voicewatch.simulate_notes import DEMO_CLUBS, DemoClub, make_note

#: The audit log's actor for the demo's own changes.
DEMO_ACTOR = "demo script"


def _club(organization_id: str) -> DemoClub:
    for club in DEMO_CLUBS:
        if club.organization_id == organization_id:
            return club
    raise LookupError(
        f"unknown demo organization: {organization_id}"
        f" (one of {', '.join(c.organization_id for c in DEMO_CLUBS)})"
    )


def _submit(ctx: Any, rng: random.Random, club: DemoClub, fail_plan: str | None) -> str:
    artifact = submit_note(
        ctx,
        organization_id=club.organization_id,
        coach_user_id=rng.choice(club.coaches),
        source_channel="whatsapp",
        text=make_note(rng, club),
        fail_plan=fail_plan,
    )
    return str(artifact["artifact_id"])


def queue_burst(ctx: Any, notes: int, *, organization_id: str, rng: random.Random) -> list[str]:
    """Queue ``notes`` notes for one organization at once (a burst for its rate limit)."""
    club = _club(organization_id)
    return [_submit(ctx, rng, club, None) for _ in range(notes)]


@dataclass
class GuardScript:
    """The demo's guard-rail script; offsets are ms since the demo started."""

    budget_org: str = "org_rvfc"
    budget_usd: float = 0.0004  # a few dozen notes' estimated cost: fills in a minute or two
    raised_budget_usd: float = 25.0
    raise_budget_at_ms: int = 100_000
    outage_at_ms: int = 20_000
    outage_ms: int = 8_000  # the claims provider is down this long: the breaker opens
    burst_org: str = "org_hrc"
    burst_at_ms: int = 45_000
    burst_notes: int = 12
    burst_limit_per_minute: int = 4
    lift_limit_after_ms: int = 60_000  # then the lowered limit is lifted again
    done: set[str] = field(default_factory=set)

    def step(
        self, ctx: Any, settings: Any, elapsed_ms: int, now_ms: int, rng: random.Random
    ) -> list[str]:
        """Do what is due at ``elapsed_ms`` (each action once); returns what was done."""
        actions = [
            ("budget", 0, lambda: self._budget(ctx, now_ms, self.budget_usd)),
            ("outage", self.outage_at_ms, lambda: self._outage(ctx, now_ms)),
            ("burst", self.burst_at_ms, lambda: self._burst(ctx, now_ms, rng)),
            (
                "lift",
                self.burst_at_ms + self.lift_limit_after_ms,
                lambda: ratelimit.remove_override(ctx.engine, self.burst_org, "claims"),
            ),
            ("raise", self.raise_budget_at_ms, lambda: self._budget(ctx, now_ms, None)),
        ]
        did = []
        for name, at, action in actions:
            if name not in self.done and elapsed_ms >= at:
                self.done.add(name)
                action()
                did.append(name)
        return did

    def _budget(self, ctx: Any, now_ms: int, amount: float | None) -> None:
        """Set the demo budget ``amount`` USD above what the panel says is spent today.

        The demo's seeded history already spent something today; the budget row
        is brought to that same figure (no event), so the panel and the guard
        agree and both levels are still ahead.
        """
        from voicewatch import audit
        from voicewatch.metrics.guards import spend_today

        before = budgets.get_budget(ctx.engine, self.budget_org, now_ms)
        if amount is None:
            usd, warn = self.raised_budget_usd, 0.8
        else:
            base = spend_today(ctx.engine, self.budget_org, now_ms)
            usd, warn = base + amount, (base + amount / 2) / (base + amount)
        row = budgets.set_budget(ctx.engine, self.budget_org, usd, warn, now_ms=now_ms)
        if amount is not None:
            base = spend_today(ctx.engine, self.budget_org, now_ms)
            if base > row.spend_usd:
                budgets.add_spend(ctx.engine, self.budget_org, base - row.spend_usd, now_ms, None)
        audit.record(
            ctx.engine,
            actor=DEMO_ACTOR,
            action="budget.set",
            target=self.budget_org,
            before=None if before is None else {"daily_budget_usd": before.daily_budget_usd},
            after={"daily_budget_usd": round(usd, 6), "warn_at": round(warn, 4)},
            at_ms=now_ms,
        )

    def _outage(self, ctx: Any, now_ms: int) -> None:
        outages.start_outage(ctx.engine, "claims", now_ms, self.outage_ms)

    def _burst(self, ctx: Any, now_ms: int, rng: random.Random) -> None:
        ratelimit.set_override(
            ctx.engine, self.burst_org, "claims", self.burst_limit_per_minute, now_ms
        )
        queue_burst(ctx, self.burst_notes, organization_id=self.burst_org, rng=rng)


def simulate_guard_traffic(
    ctx: Any,
    artifacts: int,
    outage: str | None,
    outage_ms: int,
    burst_org: str | None,
    rng: random.Random,
) -> str:
    """``voicewatch simulate --outage / --burst-org``: returns the line the CLI prints."""
    from voicewatch.clock import now_ms, to_iso
    from voicewatch.simulate import seed_demo_clubs

    seed_demo_clubs(ctx.engine)
    said = []
    if outage:
        if outage != "claims":
            raise ValueError("--outage: the claims service is the one text notes call")
        ends = outages.start_outage(ctx.engine, outage, now_ms(), outage_ms)
        said.append(f"{outage} provider down until {to_iso(ends)}")
    if burst_org:
        ids = queue_burst(ctx, artifacts, organization_id=burst_org, rng=rng)
        said.append(f"queued a burst of {len(ids)} notes for {burst_org}")
    else:
        ids = [_submit(ctx, rng, rng.choice(DEMO_CLUBS), None) for _ in range(artifacts)]
        said.append(f"queued {len(ids)} notes")
    return "; ".join(said) + "; run 'voicewatch worker' to process them"
