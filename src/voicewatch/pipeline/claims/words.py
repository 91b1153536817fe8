"""Word lists the name finder and the clause splitter read: data, not logic.

Each set is written as running text where that reads better than a literal. They are
tuned on the dev notes of the corpus (see :mod:`voicewatch.pipeline.claims.scoring`).
"""

from __future__ import annotations

from voicewatch.pipeline.claims.text import TITLES, fold
from voicewatch.pipeline.resolution import NAME_PARTICLES
from voicewatch.pipeline.topics import TOPICS


def _words(listing: str) -> frozenset[str]:
    """A word set written as running text, easier to read and extend than a literal."""
    return frozenset(listing.split())


PARTICLES = NAME_PARTICLES

STOPWORDS = _words(
    """a about above after again against all also am an and any are as at away back be because
    been before being below between both but by can cant could couldnt did didnt do does doesnt
    doing done dont down during each even ever every few for from further get gets got had hadnt
    has hasnt have havent having he hed hell hes her here hers herself him himself his how i id
    ill im ive if in into is isnt it its itself just let lets like me more most much must my
    myself never no nor not now of off on once only or other our ours ourselves out over own
    same she shed shell shes should so some such than that thats the their theirs them
    themselves then there theres these they theyd theyll theyre theyve this those through to
    too under until up upon us very was wasnt we wed well were weve what whats when where which
    while who whom whose why will with wont would wouldnt yeah yes yet you youd youll youre
    youve your yours yourself ok okay right so lads girls boys everyone everybody nobody
    someone somebody anyone anybody noone nothing something anything one two three four five
    six seven eight nine ten eleven twelve first second third last next another great good
    lovely brilliant well also plus still really maybe please thanks cheers hi hello hey team
    training match game session today tonight tomorrow yesterday week weekend month year
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december christmas easter halloween summer
    winter spring autumn need needs going plan reminder congrats note full time lost beat won
    drew told met had wants not numbers parents mam mum dad coach coaches ref referee
    physio doc doctor mr mrs ms dr fr sir miss reminder update quick"""
)

#: English words that are also first names or surnames: lower-case, they are words.
NAME_WORDS = _words(
    """will mark max grace hope faith joy rose may june april august dawn summer autumn sue pat
    bill rob art frank ray guy drew chase hunter mason miles gene lance grant ward power price
    brown green white black young long little king hill wood bell rush page cook baker walker
    hall best sharp strong hart field bishop major noble golden street wells banks marsh butler
    fox hunt carpenter taylor smith bush day head love moody rich joy eve sky river storm"""
)

TITLE_WORDS = frozenset(TITLES | {"coach", "ref", "referee", "doctor", "sister", "father"})
OPPONENT_CUES = frozenset(
    {
        "against",
        "v",
        "vs",
        "versus",
        "beat",
        "beating",
        "to",
        "at",
        "in",
        "from",
        "over",
        "playing",
        "play",
        "played",
        "into",
        "for",
        "with",
        "the",
        "a",
        "an",
        "our",
        "their",
        "his",
        "her",
        "my",
        "your",
        "by",
        "of",
        "on",
        "near",
        "around",
        "up",
    }
)
TEAM_SUFFIXES = _words(
    """gaa fc rfc afc united utd city rovers celtic tigers harps athletic town rangers wanderers
    academy school college park game match squad panel team club stadium road street cup
    league championship final shield county minors juniors seniors"""
)
VERBISH = _words(
    """is was has had hasnt hadnt wasnt isnt did didnt does doesnt got gets will wont can cant
    could couldnt should would wouldnt needs need made makes scored scores kicked hit hits came
    comes went goes wants wanted asked said says told tried tries played plays trained looked
    looks seems seemed gave gives took takes missed misses rolled pulled broke felt feels
    thinks reckons turned showed left started starts finished hurt picked dropped passed are
    were keeps kept loves struggled struggles improved cried fouled hasnt won lost threw
    apologised skipped forgot think reckon feel worry want know guess hope have"""
)
ADVERBS = _words(
    """also really just still never always finally definitely probably actually already even
    only both all again has have had been"""
)
SUBJECT_PRONOUNS = frozenset(
    {"he", "she", "they", "we", "i", "hes", "shes", "theyre", "im", "ive", "id", "weve", "were"}
)
THIRD_PERSON = frozenset(
    {
        "he",
        "she",
        "him",
        "her",
        "his",
        "hers",
        "himself",
        "herself",
        "hes",
        "shes",
        "they",
        "them",
        "their",
        "theyre",
        "both",
        "hed",
        "shed",
        "hell",
        "shell",
        "themselves",
    }
)
TEAM_WORDS = frozenset(
    {
        "we",
        "us",
        "our",
        "lads",
        "girls",
        "boys",
        "team",
        "everyone",
        "everybody",
        "squad",
        "group",
        "were",
        "weve",
        "wed",
        "ours",
        "nobody",
        "all",
        "parents",
    }
)
BLOCK_BEFORE_SUBJECT = _words(
    """and or nor but so because cos cause that if when whether as since until unless though
    although while where which who whom whose what how than like think thinks thought reckon
    reckons said says say know knows knew feel feels felt hope hopes guess worry told tell
    asked ask with to for about of at on by from into in over under after before between
    against the a an his her their our my your its both all is was are were be been"""
)
#: Before a name, only words that take it as an object or join it to a list stop a new
#: clause: "after mia dolan is making progress" starts one, "told Sean he..." does not.
BLOCK_BEFORE_NAME = _words(
    """with to for about of at on by from into over under than like between against told
    tell asked ask saw see seen the a an our my your and or nor is was are were be been both
    all"""
)
LEADING_FILLERS = _words(
    """and but so then also plus ehm em erm um uh uhm yeah yep right ok okay well anyway like
    oh because cos cause while whereas although though"""
)
CONJUNCTIONS = frozenset(
    {
        "and",
        "but",
        "so",
        "because",
        "cos",
        "cause",
        "then",
        "while",
        "whereas",
        "although",
        "though",
        "which",
        "plus",
    }
)
MARKERS: tuple[tuple[str, ...], ...] = (
    ("on", "another", "note"),
    ("other", "than", "that"),
    ("apart", "from", "that"),
    ("as", "well", "as", "that"),
    ("the", "other", "thing"),
    ("one", "more", "thing"),
    ("in", "other", "news"),
    ("on", "top", "of", "that"),
    ("another", "thing"),
    ("besides", "that"),
    ("and", "then"),
    ("oh", "and"),
    ("anyway",),
    ("meanwhile",),
    ("also",),
)
BASE_VERBS = _words(
    """ring call talk have give check tell explain speak see get do send make keep let try put
    sort chat text email follow be need"""
)


def _lexicon_words() -> frozenset[str]:
    words: set[str] = set()
    for topic in TOPICS:
        for cue in topic.cues:
            parts = cue.split()
            if len(parts) == 1:
                words.add(fold(parts[0]).replace("'", ""))
    return frozenset(words)


COMMON = STOPWORDS | NAME_WORDS | _lexicon_words()
