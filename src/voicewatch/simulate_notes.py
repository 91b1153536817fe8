"""Demo clubs, rosters and coach notes for ``voicewatch simulate`` and the demo.

Notes are written the way coaches talk into a phone: short, informal, about
one to three players, over the 15 claim topics.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DemoClub:
    organization_id: str
    name: str
    teams: tuple[str, ...]
    players: tuple[tuple[str, str, str], ...]  # (name, team, aliases "a|b")
    coaches: tuple[str, ...]


DEMO_CLUBS: tuple[DemoClub, ...] = (
    DemoClub(
        "org_clg",
        "Clonmore GAA",
        ("U14 Hurling", "Senior Football"),
        (
            ("Sean Murphy", "U14 Hurling", "Murph"),
            ("Ciarán O'Brien", "U14 Hurling", "Ciaran"),
            ("Jack Walsh", "U14 Hurling", "Walshy"),
            ("Darragh Kelly", "U14 Hurling", ""),
            ("Oisín Byrne", "U14 Hurling", "Oisin"),
            ("Liam Ryan", "Senior Football", ""),
            ("Conor McCarthy", "Senior Football", "Macker"),
            ("Eoin Doyle", "Senior Football", ""),
            ("Padraig Nolan", "Senior Football", "Paddy"),
        ),
        ("coach_clg_1", "coach_clg_2"),
    ),
    DemoClub(
        "org_rvfc",
        "Riverside FC",
        ("U12 Girls", "First Team"),
        (
            ("Emma Clarke", "U12 Girls", ""),
            ("Sophie Brennan", "U12 Girls", "Soph"),
            ("Aoife Kavanagh", "U12 Girls", ""),
            ("Grace Fitzgerald", "U12 Girls", "Gracie"),
            ("Marcus Adeyemi", "First Team", ""),
            ("Tomás Lynch", "First Team", "Tomas"),
            ("Ryan Quinn", "First Team", ""),
            ("Kieran Dunne", "First Team", "Dunner"),
        ),
        ("coach_rvfc_1", "coach_rvfc_2"),
    ),
    DemoClub(
        "org_hrc",
        "Harbour Rugby Club",
        ("U16", "Seniors"),
        (
            ("James O'Connor", "U16", "Jimmy"),
            ("Niall Farrell", "U16", ""),
            ("Cian Moloney", "U16", ""),
            ("Rory Gallagher", "Seniors", ""),
            ("Dylan Hughes", "Seniors", ""),
            ("Finn Power", "Seniors", "Finny"),
        ),
        ("coach_hrc_1",),
    ),
)

#: The demo coaches' names (ids 1-4 per club: the event traffic uses all four).
DEMO_COACH_NAMES: dict[str, str] = {
    "coach_clg_1": "Jim Murphy",
    "coach_clg_2": "Siobhán Walsh",
    "coach_clg_3": "Declan Ryan",
    "coach_clg_4": "Mairéad Nolan",
    "coach_rvfc_1": "Sarah Okafor",
    "coach_rvfc_2": "Tom Brennan",
    "coach_rvfc_3": "Priya Sharma",
    "coach_rvfc_4": "Gary Dunne",
    "coach_hrc_1": "Niamh Fitzgerald",
    "coach_hrc_2": "Colm Hughes",
    "coach_hrc_3": "Aidan Power",
    "coach_hrc_4": "Orla Moloney",
}


def seed_demo_coaches(engine: Any) -> None:
    """Give the demo clubs' coaches their names (idempotent: re-running renames nothing)."""
    from voicewatch.coaching.people import add_coach

    for user_id, name in DEMO_COACH_NAMES.items():
        add_coach(engine, user_id, f"org_{user_id.split('_')[1]}", name)


#: Note templates; {a}, {b} are players' first names or full names, {team} a team.
NOTE_TEMPLATES: tuple[str, ...] = (
    "{a} went over on his ankle at training tonight, he'll be doubtful for Saturday.",
    "{a} was excellent on the frees, striking has really come on. {b} looked tired though.",
    "Quick one, {a} missed training again, that's the third week in a row.",
    "{a} had a great game, scored two and set up another. Really pleased with her.",
    "Need to talk to {a}'s parents about the attitude at the weekend, answering back to the ref.",
    "{a} has a hamstring strain, physio says two weeks. {b} will start instead.",
    "Fitness test results: {a} did the bleep test to level 11, {b} only got to 8.",
    "We lost 2-14 to 1-10 against the Rovers, the {team} were flat in the second half.",
    "{a} is coming on brilliantly at under the high ball, first time I've seen her catch cleanly.",
    "Selection for Sunday: {a} in at full back, {b} on the bench.",
    "{a} told me she's been feeling really down lately with exams, keep an eye on her.",
    "Reminder that {a} is skipping breakfast before morning sessions and fading by half time.",
    "Want {a} to work on the weak side, left foot passing is poor. Goal for the month.",
    "{a} captained the team for the first time today and did great.",
    "We need to press higher as a team, the {team} kept getting caught on the counter.",
    "{a} and {b} were late again, warming up on their own.",
    "{a} got a concussion in the second half, came off, HIA protocol started.",
    "Great session tonight, everyone worked hard and the drills were sharp.",
    "{a} scored his first senior point today, big milestone for him.",
    "{a}'s mum rang, he won't be at training Thursday, family wedding.",
)


def first_name(name: str) -> str:
    return name.split()[0]


def make_note(rng: random.Random, club: DemoClub) -> str:
    """One realistic note about players of ``club``."""
    template = rng.choice(NOTE_TEMPLATES)
    a, b = rng.sample(club.players, 2)
    pick = (lambda p: p[0]) if rng.random() < 0.5 else (lambda p: first_name(p[0]))
    return template.format(a=pick(a), b=pick(b), team=a[1])


def roster_csv(club: DemoClub) -> str:
    lines = ["name,team,aliases"]
    for name, team, aliases in club.players:
        lines.append(f'"{name}","{team}","{aliases}"')
    return "\n".join(lines) + "\n"
