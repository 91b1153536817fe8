"""Data table: the 15 claim topics and the words a coach uses for each.

This module is vocabulary only: the rules extractor (``claims``) compiles these
lexicons into stemmed token patterns, and the annotation guidelines of the scoring corpus
refer to the definitions here, so the two agree on what each topic means. It is a data
table (word lists), so it runs past the ~450-line module size on purpose.

Lexicon syntax: each cue is a word or phrase written as a coach would say it; the
extractor lower-cases it, folds accents, drops apostrophes ("didn't" → "didnt") and
stems each word the same way it stems the note, so "injured", "injury" and "injuries"
are one cue. ``*`` stands for exactly one word of any kind ("dropped * points").

Weights say how sure a cue alone makes us: 2.0 the word all but names the topic
("hamstring", "debut"), 1.0 a typical cue, 0.5 a hint that needs company ("game").
Where two cues overlap, the longest phrase wins and its words are not counted again,
which is how "first goal" (a milestone) keeps "goal" from counting as a score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Topic:
    """A claim topic: its name, what it covers (the annotators' definition) and its cues."""

    name: str
    definition: str
    cues: Mapping[str, float]


def _cues(strong: str = "", typical: str = "", weak: str = "") -> Mapping[str, float]:
    """Cues given as comma-separated lists per weight, easier to read and extend than a dict."""
    table: dict[str, float] = {}
    for weight, listing in ((0.5, weak), (1.0, typical), (2.0, strong)):
        for cue in listing.split(","):
            cue = " ".join(cue.split())
            if cue:
                table[cue] = weight
    return MappingProxyType(table)


INJURY = Topic(
    "injury",
    "Physical injuries and knocks, pain, rehab, medical checks, concussion protocols, "
    "return from injury, and statements that nobody was hurt.",
    _cues(
        strong="""picked up a knock, picked up an injury, first session back, back in full training,
        went off injured, off injured, stretchered off,
        injury, injured, injuries, hamstring, ankle, concussion, concussed, sprain,
        sprained, fracture, stress fracture, physio, physiotherapist, rehab, x-ray, mri,
        rolled his ankle, rolled her ankle, bang on the head, knock to the head, nosebleed,
        shin splints, osgood, acl, ligament, dislocated, ac joint, return to play,
        cleared for contact, cleared to play, carrying a knock, carrying knocks, groin,
        pulled his groin, pulled her groin, stitches, crutches, in a boot, sore, pain,
        painful, limping, hurt, hurts, tweaked, niggle, broken wrist, broken arm,
        broken leg, broken finger, mind his hamstring, mind her hamstring, tighten up,
        dead leg, corked, whiplash, fractured, cartilage, meniscus, achilles, torn muscle""",
        typical="""knock, knocks, knee, shoulder, wrist, calf, quad, back spasm, strain, strained,
        torn, doc, doctor, medical, bruise, bruised, swollen, swelling, ice and elevation,
        collision, twisted, bleeding, concussion tests, baseline concussion, injury free,
        looked at, checked, strapping, sling, scan, a&e, hospital, tight""",
        weak="""ice, elevation, cut, fell, landing, head, foot, protocol, kept her out,
        kept him out""",
    ),
)

WELLBEING = Topic(
    "wellbeing",
    "Mental and emotional state, mood, confidence, stress, sleep, home life, "
    "bereavement, and illness (sick, flu, a bug).",
    _cues(
        strong="""moody, nightmares, psychologist, sports psychologist, counsellor, counselling,
        panic attack, panic attacks, confidence is shot, in a bad place, stomach bug, tummy bug,
        unwell, under the weather, not well,
        wellbeing, well-being, anxiety, anxious, stressed, mental health, bereavement,
        passed away, grief, grieving, inconsolable, upset, cried, crying, in tears,
        nervous, nerves, confidence, confident, self-esteem, rough patch, tough time,
        going on at home, not sleeping, homesick, bullied, overwhelmed, afraid, scared,
        frightened, sick, out sick, flu, fever, glandular fever, covid, vomiting, a bit down,
        bit down, feeling down, check in with,
        worried about her, worried about him, worried about them, cant wait, can't wait,
        mental side, lonely, withdrawn, devastated""",
        typical="""relaxed, bug, spirits, morale,
        stress, worried, worry, worries, mood, sad, unhappy, sleep, sleeping, exams,
        at home, ill, illness, a bug, virus, temperature, fainted, gutted, excited, buzzing,
        struggling, quiet, down, mental, home, through the roof, doing really well,
        head is, head's, emotional""",
        weak="""happy, tired, school, low, frustrated, grand, cold, family""",
    ),
)

PERFORMANCE = Topic(
    "performance",
    "How a player or the team played or trained: good or bad games, scores a player got, "
    "awards like player of the match, effort and work rate in a game or session.",
    _cues(
        strong="""player of the match, man of the match, woman of the match, motm, best player,
        best game, outstanding, brilliant, excellent, superb, immense, flying, hat-trick,
        hat trick, changed the game, off the bench, team performance, dropped * points,
        scored * goals, scored * points, missed * tackles, fouled out, on fire, screamer,
        played well, played her part, played his part, did great, did well, trained well,
        great session, good session, best i've seen, best ive seen, from play, unreal,
        class, awesome, way better, max effort, flat""",
        typical="""carried hard, carries, lost the ball, loses the ball, lose the ball,
        lost possession, conceded, concede, kept a clean sheet, clean sheet,
        performance, performed, scored, scoring, saves, assists, rebounds, turnovers,
        work rate, effort, great, solid, poor, struggled, dominant, impact, carried,
        mistakes, errors, fouls, caught everything, both scored, both our goals, quiet game,
        stopped working, heads dropped, tries, frees, hit, kicked, best, excellent in,
        got * goals, got * points, got * goal, got * point""",
        weak="""goal, goals, points, point, score, good, game, played, play, wide, wides, strong,
        spot on, try, session, quiet, never stopped, sluggish""",
    ),
)

SKILL = Topic(
    "skill",
    "Technique and specific skills (kicking, striking, passing, first touch, shooting, "
    "free taking, tackling technique, throwing): progress made or work needed.",
    _cues(
        strong="""keepie uppies, keepy uppies, keepy-uppies, juggling, ball control, side step,
        sidestep, offload, offloading, goal kicking, place kicking, box kick, spin pass, crossover,
        heading, grip, hooking, blocking, catch and pass, wall ball,
        skill, skills, technique, technical, first touch, passing range, free taking,
        free-taking, weaker foot, weak foot, both feet, both sides, off the left,
        off her left, off his left, off the right, left hand, right hand, left foot,
        right foot, lineout throwing, throw ins, throw-ins, tackle technique,
        tackling practice, tackling technique, decision making, ball handling, layup,
        lay-up, free throw, free throws, from three, jump shot, footwork, dribbling,
        dribble, kicking off the ground, release, handpass, hand pass, soloing, striking,
        needs to work on, need to work on, work on his, work on her, coming along,
        come on a ton, has come on, improved his, improved her, catching, shooting""",
        typical="""passing, kicking, finishing, touch, lineout, throwing, tackling, handling,
        solo, weakness, accuracy, vision, practising, practicing, work on, improving,
        improved, progress, much better at, getting better, range, free taker, first-time""",
        weak="""hands, hook, block, control, coordination,
        pass, kick, strike, shot, throw, catch, tackle, defence, defense, practice,
        better, heavy""",
    ),
)

ATTENDANCE = Topic(
    "attendance",
    "Presence, absence, lateness and availability for training or matches "
    "(including the reason a player will be away).",
    _cues(
        strong="""sat out, sit out, sitting out, wont make, won't make, cant make, can't make,
        couldnt make, couldn't make, not able to make, done for the season, out for the season,
        didnt come, didn't come, no lift,
        attendance, absent, absence, late, didn't show, didnt show, no show, no-show,
        didn't turn up, didnt turn up, turned up late, missed training, missed the warm-up,
        missing training, miss training, holiday, holidays, unavailable, available,
        availability, away with work, work commitments, won't be with us,
        wont be with us, be with us, been at practice, been at training, school trip,
        in a row, numbers were poor, skipping the, off to the, will be missing,
        be missing, clash, away for, wedding, funeral, communion, out sick,
        back at practice, back at training, will be out, sent home""",
        typical="""missed, missing, miss, away, absent from, trip, numbers, turnout,
        showed up, turned up, on time, both out, are out, is out, left early, leave early,
        cry off, gaeltacht, back from, away on""",
        weak="""out, at training, at practice, this month, three weeks, two weeks""",
    ),
)

BEHAVIOUR = Topic(
    "behaviour",
    "Conduct and attitude, good or bad: discipline, cards and sin bins, messing, cheek, "
    "respect, tantrums, leadership, smoking or drinking.",
    _cues(
        strong="""temper, snapping, snapped, lost the head, lost his head, lost her head,
        kicked off, mouthy, lippy, disruptive, cheating, diving,
        behaviour, behavior, behaved, misbehaving, attitude, discipline, disciplined,
        indiscipline, messing, giving cheek, cheek, backchat, answering back, rude,
        disrespect, disrespectful, dissent, sent off, red card, straight red, yellow card,
        booked, sin bin, sin binned, sin-binned, sinbin, black card, had a go at the ref,
        swearing, fighting, tantrum, sulking, sulk, smoking, vaping, on the beer,
        half cut, natural leader, leadership, role model, not listening, not acceptable,
        unacceptable, apologised, apologized, first out and last in, broke the,
        not cheering, mouthing, scrap, scrapping, punch, punched, sent home, late hit, late tackle,
        late challenge, high tackle,
        high challenge, high hit, dirty""",
        typical="""respect, yellow, yellows, red, cheeky, caught, leader,
        helping, apologise, sorry, suspended, warning, top class, giving out, broke,
        threw his, threw her, fight""",
        weak="""ref, referee,
        listening, messed, the bench""",
    ),
)

FITNESS = Topic(
    "fitness",
    "Conditioning, speed, strength, endurance, gym work, fitness tests, body weight "
    "and physical readiness.",
    _cues(
        strong="""fitter, fittest, running sessions, dead on our feet, dead on her feet,
        dead on his feet, ran out of legs, gassed, weighed in, weighs, growth spurt, pre-season,
        preseason, press ups, push ups, sit ups, hill runs, shuttles, doggies, cardio,
        fitness, conditioning, stamina, endurance, bleep test, beep test, yo-yo test,
        gym, strength programme, strength program, squat, bench press, deadlift,
        vertical jump, put on weight, carrying weight, carrying a bit of weight, lose weight,
        out of breath, blowing, more running, sprint, sprints, sprinting, getting stronger,
        stronger, kilos of muscle, muscle, fitness testing, physically, gym sessions""",
        typical="""growing, grown, weighed, bulk, bulked, awkward,
        fit, unfit, speed, pace, strength, strong, weights, agility, explosive, laps,
        running, kilos, kg, weight, lungs, sharpness, jump, physical, athletic, recovery,
        programme, program, runs, running drills""",
        weak="""run, tired, legs, testing, sharp, 40m, sluggish""",
    ),
)

NUTRITION = Topic(
    "nutrition",
    "Diet, food, hydration, meals before and after games, supplements.",
    _cues(
        strong="""nutrition, diet, eating, food, breakfast, dinner, lunch, snack, snacks, protein,
        protein shakes, carbs, carbohydrates, sugar, sugary, sweets, crisps, chocolate,
        fizzy, energy drinks, junk food, takeaway, chicken fillet rolls, fillet roll,
        hydration, hydrated, dehydrated, supplements, creatine, vitamins, water bottles,
        fruit, vegetables, meal, meals, skipping dinner, skipping meals, eating properly""",
        typical="""eat, ate, water, drink, drinks, drinking, hungry, fuel, fuelling, refuel,
        banana, bananas, chips, rubbish, shakes, tea""",
        weak="""bottle, bottles, half time""",
    ),
)

TACTICS = Topic(
    "tactics",
    "How the team plays: game plan, formations, set pieces, kickouts and puckouts, "
    "pressing, defensive systems, roles and in-game positional moves.",
    _cues(
        strong="""tactics, tactical, game plan, gameplan, formation, kickout, kickouts, kick-out,
        kick-outs, puckout, puckouts, puck-out, puck-outs, sweeper, zone, 2-3 zone,
        man to man, man-mark, man mark, man marking, drift defence, line speed,
        set pieces, set piece, set plays, set play, holding mid, holding midfielder,
        push up, press high, go short, kick long, go long, swap wings, higher line,
        defensive shape, play out from the back, counter attack, overlap, near post,
        top of the zone, switching to""",
        typical="""press, pressing, system, structure, shape, plan, corners, switch, swap,
        possession, transition, width, runners, role, job, marking, number 11, number 6,
        tighter, conceding, defence, defense, set up, wind""",
        weak="""attack, second half, back, first half, the start""",
    ),
)

SELECTION = Topic(
    "selection",
    "Who is picked, starts, is dropped, benched or subbed, squad and panel membership, "
    "captaincy, playing time, trials, and suspensions that rule a player out of a game.",
    _cues(
        strong="""give her a go, give him a go, starting xv, starting 15, starting five,
        starting lineup, line up, lineup, named captain, take over as captain,
        selection, selected, team for, team sheet, starting, dropped, dropped to,
        left off, left out, omitted, captain, captaincy, vice captain, vice-captain,
        playing time, game time, starting fifteen, starting team, same fifteen,
        go with the same, push for a start, pushing for a start, pushing hard, for a start,
        comes in at, come in at, coming in at, to start at, didn't get picked,
        didnt get picked, get picked, picked, on the bench, try out at, miss the quarter,
        miss the final, miss the semi, suspended for, banned, ban, suspension,
        step back from the panel, stepping back from the panel, named in""",
        typical="""jersey, shirt, at 13, at 10, at 15,
        comes into, come into, coming into, replaces, pick, picking, bench, squad, panel, sub,
        subbed, substitute, start, starts,
        starting at, comes in, come in, trial, trials, try out, the team, first team,
        squad player, voted""",
        weak="""team, fifteen, over, minutes, moves to, move to, moving to""",
    ),
)

PARENT_COMMUNICATION = Topic(
    "parent_communication",
    "Contact with parents or guardians: calls, messages, meetings, reminders to parents, "
    "a parent's concerns or requests.",
    _cues(
        strong="""parent, parents, parents meeting, group chat, ring her mom, ring her mam,
        ring his mam, ring his mum, ring her mum, ring his dad, ring her dad, tell his parents,
        tell her parents, talk to her mam, talk to his mam, talk to her mum, talk to his mum,
        both sets of parents, met with, have a word with his, have a word with her,
        mum emailed, mam rang, dad rang, dad wants, mum wants, mam wants,
        parents have been told, explain it to""",
        typical="""mum says, mam says, dad says, mom says, mum mentioned, mam mentioned,
        dad mentioned, mom called, mum called, dad called, mam called,
        his dad, her dad, his mam, her mam, his mum, her mum, her mom, his mom,
        his mother, her mother, his father, her father, mam, mum, mom, mammy, mummy, dad,
        daddy, mother, father, guardian, whatsapp, consent form, permission slip, phoned,
        phone call, rang me, called me""",
        weak="""mentioned, says, said,
        rang, ring, emailed, email, texted, message, messages, meeting, reminder, told,
        tell, talk to, speak to, spoke to, chat, have a word, let them know, explain, call,
        text, remind, asking""",
    ),
)

GOALS = Topic(
    "goals",
    "Targets and ambitions set by or for a player or the team: what they aim for, "
    "want to make, or are working towards. (Goals scored in a game are performance.)",
    _cues(
        strong="""want to go for, wants to go for, go for the,
        goal for, goal is, his goal is, her goal is, my goal is, our goal is,
        thats his goal, that's his goal, thats her goal, that's her goal,
        goal this season, goal for the season, target, targets, aim, aims, aiming,
        ambition, ambitions, dream, wants to make, want to make, wants to be,
        wants to get, hopes to, hoping to, objective, objectives, nail down,
        working towards, work towards, try out for""",
        typical="""wants to, want to, be able to, by christmas, by the spring,
        by the end of the season,
        get back to, next year, this season, set a goal""",
        weak="""wants, hope""",
    ),
)

DEVELOPMENT_MILESTONE = Topic(
    "development_milestone",
    "Firsts and landmarks: debut, first start, first score, call-ups to county, regional "
    "or academy squads, moving up an age group, 50th or 100th appearance, gradings.",
    _cues(
        strong="""referee course, coaching course, level one, level 1, qualified, badge,
        milestone, debut, first ever, first start, first goal, first point, first try,
        first basket, first game, first cap, first call up, first varsity start,
        call up, called up, call-up, development squad, county squad, regional squad,
        academy squad, made the county, moving up to, moved up to, move up to, moving up,
        minor panel, 100th, 50th, for the first time, first time, age group, promoted,
        graduated, grading, county u16, county u21""",
        typical="""appearance, appearances, cap, capped, invited, academy, senior seconds,
        first girl, first boy, the county""",
        weak="""first, ever""",
    ),
)

MATCH_RESULT = Topic(
    "match_result",
    "The outcome of a game: won, lost, drew, the score line, who we beat or lost to.",
    _cues(
        strong="""we won, we lost, we drew, we beat, beat, won, lost, drew, full time, final score,
        apiece, by a point, by two, by three, by four points, result, scoreline,
        score line, went down to, came out on top, victory, defeat, defeated, semi final,
        hammered, lost to, win over, the win, win against, away to""",
        typical="""win, wins, loss, draw, drawn, beaten, final, league, championship, cup, feile,
        quarter final, fixture""",
        weak="""match, tournament, points""",
    ),
)

GENERAL = Topic(
    "general",
    "Anything else worth recording about a player or the team: admin, fees and forms, "
    "schedules, school news, life events.",
    _cues(
        typical="""signed up, sign up, summer camp, camp, coaching, volunteer, volunteered,
        agreed to, expecting, pregnant, baby, new job, college, moving to,
        fee, fees, registration, registration fee, paid, payment, medical forms,
        forms, gear, kit, jersey, bus, lift, lifts, fundraiser, raffle, insurance,
        leaving cert, junior cert, birthday, retiring, retirement, congrats, congratulations""",
        strong="""flying colours, registration fee, medical forms""",
        weak="""pitch, tuesday, lovely, morning""",
    ),
)

#: The 15 topics in the order of the seed architecture.
TOPICS: tuple[Topic, ...] = (
    INJURY,
    WELLBEING,
    PERFORMANCE,
    SKILL,
    ATTENDANCE,
    BEHAVIOUR,
    FITNESS,
    NUTRITION,
    TACTICS,
    SELECTION,
    PARENT_COMMUNICATION,
    GOALS,
    DEVELOPMENT_MILESTONE,
    MATCH_RESULT,
    GENERAL,
)
TOPIC_NAMES: tuple[str, ...] = tuple(t.name for t in TOPICS)
FALLBACK_TOPIC = "general"

#: Playing positions. A position is weak evidence that the clause says who plays where
#: (selection), and its words must not count elsewhere ("in goal" is a position, not a
#: goal scored; "back" in "corner back" is not a return from injury).
POSITION_WEIGHT = 0.5
POSITIONS: tuple[str, ...] = (
    "in goal",
    "goalkeeper",
    "keeper",
    "goalie",
    "full back",
    "full-back",
    "corner back",
    "corner backs",
    "half back",
    "centre back",
    "center back",
    "wing back",
    "midfield",
    "midfielder",
    "full forward",
    "corner forward",
    "wing forward",
    "half forward",
    "centre forward",
    "center forward",
    "centre half",
    "center half",
    "scrum half",
    "scrum-half",
    "fly half",
    "out half",
    "hooker",
    "prop",
    "back row",
    "second row",
    "number 8",
    "point guard",
    "shooting guard",
    "power forward",
    "small forward",
    "striker",
    "winger",
    "at center",
)

#: Phrases that are evidence for no topic and must not count as one: the extractor
#: consumes them first so their words are not scored elsewhere ("full game").
NEUTRAL_PHRASES: tuple[str, ...] = (
    "full game",
    "pick up",
    "picking up",
    "picked up",
    "training",
    "tonight",
    "today",
    "last night",
    "this week",
    "next week",
    "the lads",
    "the girls",
)

#: Cue pairs that mean more together than apart: a parent noun next to a way of talking
#: is parent communication even when each alone is weak ("ring ... mam").
COMBOS: tuple[tuple[str, frozenset[str], frozenset[str], float], ...] = (
    (
        "parent_communication",
        frozenset({"mam", "mum", "mom", "dad", "parent", "parents", "mother", "father", "mammy"}),
        frozenset(
            {
                "ring",
                "rang",
                "call",
                "called",
                "phoned",
                "phone",
                "text",
                "texted",
                "email",
                "emailed",
                "talk",
                "tell",
                "told",
                "chat",
                "word",
                "meeting",
                "met",
                "explain",
                "message",
                "wants",
                "remind",
                "reminder",
                "asked",
                "speak",
                "spoke",
            }
        ),
        1.5,
    ),
)
