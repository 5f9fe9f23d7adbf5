"""The public labeled sources that `build.py` turns into routing data, and how each maps to a route.

Every source is pinned to a commit of its GitHub repository and read from a local git mirror
(see `_mirror.py`); nothing here downloads anything.  A reader yields `(text, orig)` pairs, or
`(text, orig, prior_user)` where earlier user turns of a dialogue matter.  `orig` is the source's own
intent / category / type; `mapping` turns it into a route, and `None` drops it.  Each mapping entry is
`orig: (label, reason)`; `"*"` is the entry for every orig a uniform source has.

The label rule (bench/data/README.md):
- simple: a small cheap model answers directly: FAQ/support policy, chit-chat, short facts, definitions,
  recipes, jokes, general knowledge about entities, creative writing, summarising or extracting.
- reasoning: multi-step derivation or code: math word problems, writing/fixing code, puzzles,
  multi-hop questions that chain several facts, comparisons of two entities' facts.
- tool_use: needs an external tool/API/action, the user's own data, or live data.
Ambiguous intents are dropped, not guessed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from _mirror import Mirrors

S, R, T = "simple", "reasoning", "tool_use"

Item = tuple  # (text, orig) or (text, orig, prior_user)


@dataclass(frozen=True)
class Source:
    name: str  # short id, used as the `source` field
    repo: str  # owner/name on GitHub
    commit: str  # pinned 40-hex commit
    license: str
    license_quote: str  # the line of the repo's LICENSE/README that states it
    attribution: str
    paths: tuple[str, ...]  # files (or folders, ending in "/") the reader opens
    read: Callable[[Source, Mirrors], Iterable[Item]]
    mapping: dict[str, tuple[str | None, str]]
    what: str  # one line for the README table
    train: bool = True  # False: license allows evaluation only (non-commercial, no license, ...)
    cap: int = 1200  # most items kept, sampled evenly across origs
    # Support sets: an item of a tool_use intent phrased as a how-to question ("how do I cancel my order?")
    # asks for the policy, not the action, so the rule makes it simple (orig gets a "+how-to" suffix).
    howto_simple: bool = False

    def label(self, orig: str) -> str | None:
        if orig in self.mapping:
            return self.mapping[orig][0]
        if "*" in self.mapping:
            return self.mapping["*"][0]
        raise KeyError(f"{self.name}: orig {orig!r} has no mapping entry")

    def text(self, m: Mirrors, path: str) -> str:
        return m.text(self.repo, self.commit, path)

    def files(self, m: Mirrors) -> list[str]:
        out: list[str] = []
        for p in self.paths:
            out.extend(m.ls(self.repo, self.commit, p) if p.endswith("/") else [p])
        return out


def jsonl(text: str) -> Iterator[dict]:
    for line in text.splitlines():
        line = line.strip()
        if line:
            yield json.loads(line)


def _drop_all(names: Iterable[str], reason: str) -> dict[str, tuple[None, str]]:
    return {n: (None, reason) for n in names}


# --------------------------------------------------------------------------------------------------
# Task-oriented assistant intents
# --------------------------------------------------------------------------------------------------

_WAKE = re.compile(r"^(?:(?:hey|ok|okay|hi)\s+)?(?:olly|ollie|siri|alexa|google|computer)\b[\s,]*", re.I)


def read_slurp(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        for d in jsonl(src.text(m, path)):
            text = _WAKE.sub("", d["sentence"]).strip()
            yield text, d["intent"]


_SLURP_ODD = ["cleaning", "cooking_query", "createoradd", "factoid", "game", "general_greet", "greet",
              "hue_lightdim", "hue_lightoff", "hue_lightup", "joke", "likeness", "locations", "music",
              "podcasts", "post", "query", "quirky", "radio", "remove", "sendemail", "set", "wemo_off"]

SLURP_MAP: dict[str, tuple[str | None, str]] = {
    "qa_factoid": (S, "short factual questions"),
    "qa_definition": (S, "definitions"),
    "cooking_recipe": (S, "recipes and cooking how-tos"),
    "general_joke": (S, "jokes"),
    "qa_currency": (T, "exchange rates are live data"),
    "qa_stock": (T, "stock prices are live data"),
    "datetime_query": (T, "the current time/date somewhere needs a clock"),
    "news_query": (T, "news is live data"),
    "weather_query": (T, "weather is live data"),
    "recommendation_events": (T, "events near the user now: live, local data"),
    "recommendation_locations": (T, "places near the user: needs location and a search"),
    "music_query": (T, "mostly 'what song is playing': needs the device"),
    "music_likeness": (T, "stores the user's taste in the music service"),
    "music_dislikeness": (T, "stores the user's taste in the music service"),
    "music_settings": (T, "device action"),
    "qa_maths": (None, "one-step arithmetic: not a word problem, not general knowledge"),
    "datetime_convert": (None, "mixes time-zone arithmetic with settings changes"),
    "recommendation_movies": (None, "mixes 'what is playing near me' (live) with 'suggest a movie' (simple)"),
    "general_quirky": (None, "grab-bag of statements, chit-chat and odd requests"),
    **_drop_all(_SLURP_ODD, "a handful of items under a stray label without scenario prefix"),
    "*": (T, "alarms, calendar, email, lists, IoT, audio, play_*, social, takeaway, transport: actions "
             "or the user's own data"),
}


HINT3_MAP: dict[str, tuple[str | None, str]] = {
    # curekart (health-supplement shop)
    "curekart:CALL_CENTER": (S, "support FAQ: contact number and hours"),
    "curekart:CANCEL_ORDER": (T, "mostly 'I want to cancel my order': an action on the user's order"),
    "curekart:CHAT_WITH_AGENT": (None, "hand-off requests mixed with complaints"),
    "curekart:CHECK_PINCODE": (T, "delivery availability for a given pincode/product: a lookup"),
    "curekart:CONSULT_START": (None, "fragments ('Diet', 'Muscle diet')"),
    "curekart:DELAY_IN_PARCEL": (None, "mixes delivery-time FAQ with the user's own late order"),
    "curekart:EXPIRY_DATE": (S, "product FAQ"),
    "curekart:FRANCHISE": (S, "FAQ: how to become a seller"),
    "curekart:IMMUNITY": (S, "general health advice"),
    "curekart:INTERNATIONAL_SHIPPING": (S, "shipping-policy FAQ"),
    "curekart:MODES_OF_PAYMENTS": (S, "payment-policy FAQ"),
    "curekart:MODIFY_ADDRESS": (T, "change the address on the user's order"),
    "curekart:NO_NODES_DETECTED": (None, "out-of-scope bucket"),
    "curekart:ORDER_QUERY": (T, "the user's own orders"),
    "curekart:ORDER_STATUS": (T, "where is my order: the user's own data"),
    "curekart:ORDER_TAKING": (None, "mixes cash-on-delivery FAQ with purchase requests"),
    "curekart:ORIGINAL_PRODUCT": (S, "FAQ: are products genuine"),
    "curekart:PAYMENT_AND_BILL": (None, "mixes invoice requests (action) with payment problem reports"),
    "curekart:PORTAL_ISSUE": (None, "a few vague problem reports"),
    "curekart:RECOMMEND_PRODUCT": (None, "product-catalogue searches mixed with purchase requests"),
    "curekart:REFER_EARN": (S, "referral FAQ"),
    "curekart:REFUNDS_RETURNS_REPLACEMENTS": (None, "mixes return policy with the user's own refund"),
    "curekart:RESUME_DELIVERY": (S, "service-policy FAQ (deliveries during lockdown)"),
    "curekart:SIDE_EFFECT": (S, "product FAQ"),
    "curekart:SIGN_UP": (None, "fragments"),
    "curekart:START_OVER": (None, "bot-flow control"),
    "curekart:STORE_INFORMATION": (S, "store FAQ"),
    "curekart:USER_GOAL_FORM": (T, "re-assess the user's profile: an account action"),
    "curekart:WORK_FROM_HOME": (S, "office-policy FAQ"),
    # powerplay11 (fantasy-sports app)
    "powerplay11:ACCOUNT_BALANCE_DEDUCTED": (S, "problem report answered by policy (Banking77 convention)"),
    "powerplay11:ACCOUNT_NOT_VERIFIED": (None, "mixes 'verify my account' with status complaints"),
    "powerplay11:ACCOUNT_RESET": (None, "mixes 'how to reset' with 'reset my account'"),
    "powerplay11:APPRECIATION": (S, "chit-chat"),
    "powerplay11:BANK_VERIFICATION_DETAILS": (None, "three mixed items"),
    "powerplay11:CANNOT_SEE_JOINED_CONTESTS": (S, "problem report answered by policy"),
    "powerplay11:CAPABILITIES": (None, "vague ('Sir help me')"),
    "powerplay11:CASH_BONUS": (None, "fragments"),
    "powerplay11:CASH_BONUS_EXPIRY": (S, "bonus-policy FAQ"),
    "powerplay11:CHANGE_BANK_ACCOUNT": (T, "change the user's bank details: an action"),
    "powerplay11:CHANGE_MOBILE_NUMBER": (None, "mixes how-to with the action"),
    "powerplay11:CHANGE_PROFILE_TEAM_DETAILS": (None, "mixes how-to with the action"),
    "powerplay11:CHAT_WITH_AN_AGENT": (None, "hand-off requests mixed with problem reports"),
    "powerplay11:CHECK_DEPOSIT_STATUS": (T, "the user's own deposits"),
    "powerplay11:CHECK_WALLET_BALANCE": (T, "the user's own balance"),
    "powerplay11:CONTACT_NUMBER": (S, "support FAQ"),
    "powerplay11:CRITICISM": (S, "venting: a reply, no action"),
    "powerplay11:DEDUCTED_AMOUNT_NOT_RECEIVED": (S, "problem report answered by policy (Banking77 convention)"),
    "powerplay11:DELETE_PAN_CARD": (None, "mixes how-to with the action"),
    "powerplay11:DOWNLOAD_POWERPLAY11": (S, "how-to FAQ"),
    "powerplay11:FAIRPLAY_VIOLATIONS": (S, "rules FAQ"),
    "powerplay11:FAKE_TEAMS": (None, "bare accusations ('Fraud')"),
    "powerplay11:FEEDBACK": (None, "three fragments"),
    "powerplay11:GREETINGS_DAY": (S, "greetings"),
    "powerplay11:HOW_POINTS_CALCULATED": (S, "rules FAQ"),
    "powerplay11:HOW_TO_PLAY": (S, "how-to FAQ"),
    "powerplay11:INSTANT_WITHDRAWAL": (S, "feature FAQ"),
    "powerplay11:JOIN_CONTEST": (None, "fragments"),
    "powerplay11:LESS_WINNINGS_AMOUNT": (S, "problem report answered by policy"),
    "powerplay11:MATCH_ABANDONED": (S, "policy FAQ"),
    "powerplay11:NEW_TEAM_PATTERN": (S, "rules FAQ"),
    "powerplay11:NO_EMAIL_CONFIRMATION": (S, "problem report answered by policy"),
    "powerplay11:NO_NODES_DETECTED": (None, "out-of-scope bucket"),
    "powerplay11:OFFERS_AND_REFERRALS": (S, "offers FAQ"),
    "powerplay11:PAN_VERIFICATION_FAILED": (S, "problem report answered by policy"),
    "powerplay11:POINTS_NOT_UPDATED": (S, "problem report answered by policy"),
    "powerplay11:PRESENCE": (S, "chit-chat ('are you there?')"),
    "powerplay11:REFUND_OF_ADDED_CASH": (None, "mixes 'how do I get a refund' with 'refund me'"),
    "powerplay11:REFUND_OF_WRONG_AMOUNT": (T, "asks for a refund of a wrong top-up: an action"),
    "powerplay11:SIGNUP_BONUS": (S, "bonus FAQ"),
    "powerplay11:TAXES_ON_WINNINGS": (S, "tax-policy FAQ"),
    "powerplay11:TEAM_DEADLINE": (S, "rules FAQ (safe play)"),
    "powerplay11:THANKS": (S, "chit-chat"),
    "powerplay11:TYPES_BONUS": (S, "bonus FAQ"),
    "powerplay11:TYPES_CONTESTS": (S, "contest FAQ"),
    "powerplay11:UNUTILIZED_MONEY": (None, "fragments"),
    "powerplay11:UPDATE_APP": (S, "how-to FAQ"),
    "powerplay11:VERIFY_EMAIL": (None, "mixes how-to with 'verify my email'"),
    "powerplay11:VERIFY_MOBILE": (None, "mixes how-to with the action"),
    "powerplay11:VERIFY_PAN": (None, "mixes how-to with the action"),
    "powerplay11:WHAT_IF_THERES_A_TIE": (S, "rules FAQ"),
    "powerplay11:WHY_VERIFY": (S, "policy FAQ"),
    "powerplay11:WINNINGS": (None, "demands and complaints about the user's winnings, mixed"),
    "powerplay11:WITHDRAWAL_INTRO": (S, "how withdrawals work"),
    "powerplay11:WITHDRAWAL_STATUS": (T, "the user's own withdrawals"),
    "powerplay11:WITHDRAWAL_TIME": (S, "policy FAQ"),
    "powerplay11:WITHDRAW_CASH_BONUS": (None, "two items"),
    "powerplay11:WRONG_SCORES": (S, "problem report answered by policy"),
    # sofmattress (mattress shop)
    "sofmattress:100_NIGHT_TRIAL_OFFER": (S, "policy FAQ"),
    "sofmattress:ABOUT_SOF_MATTRESS": (S, "company FAQ"),
    "sofmattress:CANCEL_ORDER": (None, "mostly 'how can I cancel' (FAQ) mixed with 'cancel order'"),
    "sofmattress:CHECK_PINCODE": (T, "delivery availability for the user's pincode: a lookup"),
    "sofmattress:COD": (S, "payment-policy FAQ"),
    "sofmattress:COMPARISON": (S, "product comparison from the catalogue FAQ"),
    "sofmattress:DELAY_IN_DELIVERY": (None, "mixes delivery-time FAQ with the user's own late order"),
    "sofmattress:DISTRIBUTORS": (S, "store/dealer FAQ"),
    "sofmattress:EMI": (S, "payment-policy FAQ"),
    "sofmattress:ERGO_FEATURES": (S, "product FAQ"),
    "sofmattress:LEAD_GEN": (T, "'please call me back': schedules a call"),
    "sofmattress:MATTRESS_COST": (S, "price FAQ"),
    "sofmattress:NO_NODES_DETECTED": (None, "out-of-scope bucket"),
    "sofmattress:OFFERS": (S, "offers FAQ"),
    "sofmattress:ORDER_STATUS": (T, "the user's own order"),
    "sofmattress:ORTHO_FEATURES": (S, "product FAQ"),
    "sofmattress:PILLOWS": (S, "product FAQ"),
    "sofmattress:PRODUCT_VARIANTS": (S, "product FAQ"),
    "sofmattress:RETURN_EXCHANGE": (None, "mixes return policy with 'return my product'"),
    "sofmattress:SIZE_CUSTOMIZATION": (S, "product FAQ"),
    "sofmattress:WARRANTY": (S, "policy FAQ"),
    "sofmattress:WHAT_SIZE_TO_ORDER": (S, "sizing FAQ"),
}


def read_hint3(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        bot = path.rsplit("/", 1)[1].split("_")[0]
        rows = csv.reader(io.StringIO(src.text(m, path)))
        next(rows)
        for row in rows:
            if len(row) >= 2 and row[1].strip():
                yield row[0], f"{bot}:{row[1].strip()}"


def read_acid(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        rows = csv.reader(io.StringIO(src.text(m, path)))
        next(rows)
        for row in rows:
            if len(row) >= 2:
                yield row[1], row[0]


_ACID_S = {  # support-FAQ policy, coverage explanations, contact details, problem reports, chit-chat
    "INFO_AMERICAN_STAR": "what an agent designation means",
    "INFO_ATV_INS_EXPLAN": "coverage explanation", "INFO_BOAT_COV_EXPLAN": "coverage explanation",
    "INFO_COLL_COV_EXPLAN": "coverage explanation", "INFO_COMP_COV_EXPLAN": "coverage explanation",
    "INFO_DED_EXPLAN": "coverage explanation", "INFO_LIAB_EXPLAN": "coverage explanation",
    "INFO_RENTERS_COV_EXPLAN": "coverage explanation", "INFO_RV_INS_EXPLAN": "coverage explanation",
    "INFO_TRAVEL_INS_EXPLAN": "coverage explanation", "INFO_FLOOD_INS_EXPLAN": "coverage explanation",
    "INFO_GAP_COVERAGE": "coverage explanation",
    "INFO_AUTO_INS_CANADA": "coverage policy for driving abroad", "INFO_MEXICO_AUTO_INS": "coverage policy abroad",
    "INFO_POLICY_TRANS_TO_RENTAL": "whether policies cover rental cars",
    "INFO_RIDESHARE_COV": "whether rideshare drivers are covered", "INFO_SALVAGE_VEHICLE": "underwriting policy",
    "INFO_GLASS_COV": "when glass damage is covered", "INFO_NEW_VEHICLE_GRACE_PERIOD": "grace-period policy",
    "INFO_AUTO_PYMT_MIN_BALANCE": "billing terms", "INFO_CANCEL_FEE": "fee policy",
    "INFO_CREDIT_CARD_FEE": "fee policy", "INFO_PYMT_NOT_ONTIME": "late-payment policy",
    "INFO_PYMT_TIME": "payment processing times", "INFO_PREPAID_CARD_PYMT": "accepted payment methods",
    "INFO_MAKE_PYMT": "payment options", "INFO_ONE_TIME_PYMT": "how to pay without an account",
    "INFO_COMBINE_PYMTS": "whether bills can be paid together", "INFO_PAPERLESS_MAIL": "paperless policy",
    "INFO_MAIL_PYMT_ADDRESS": "mailing address for payments", "INFO_BILLING_DEPT_CONTACT": "contact details",
    "INFO_PHONE_NUM": "contact details", "INFO_PHONE_NUM_INTERNATIONAL": "contact details",
    "INFO_THE_GENERAL_CONTACT": "contact details", "INFO_HOMESITE_CONTACT": "contact details",
    "INFO_CUSTOMER_SERVICE_HOURS": "opening hours", "INFO_CL_DOCS_EMAIL": "where to send claim documents",
    "INFO_CL_DOCS_FAX": "where to send claim documents", "INFO_CL_DOCS_MAIL": "where to send claim documents",
    "INFO_CL_DOCS_SEND": "where to send claim documents", "INFO_CL_GLASS_SAFELITE": "which partner to call",
    "INFO_CL_FILE_CLAIM": "advice on whether to file a claim", "INFO_CL_DRP_JOIN": "how to join a programme",
    "INFO_CL_HRP_JOIN": "how to join a programme", "INFO_CAREERS": "company FAQ",
    "INFO_OPERATING_AREA": "company FAQ", "INFO_OPERATING_CO": "company FAQ", "INFO_INS_NOT_AVAILABLE": "company FAQ",
    "INFO_HEALTH_INS_QUOTE": "which products are sold", "INFO_EMPLOYMENT_VERIFY": "how employment is verified",
    "INFO_DISCOUNTS": "discount FAQ", "INFO_UW_ALUMNI_DISCOUNT": "discount FAQ",
    "INFO_DREAMKEEP_REWARDS": "programme FAQ", "INFO_DREAMS_FOUNDATION": "programme FAQ",
    "INFO_KNOWYOURDRIVE": "programme FAQ", "INFO_KNOWYOURDRIVE_DEVICE_ACTIVATE": "device how-to",
"INFO_FORGOT_PASSWORD": "how to recover a password (Banking77 convention)",
    "INFO_LOGIN_ERROR": "problem report answered by policy (Banking77 convention)",
    "INFO_PYMT_ERROR": "problem report answered by policy", "INFO_DREAMKEEP_REWARDS_ERRORS": "problem report",
    "INFO_KNOWYOURDRIVE_ERRORS": "problem report", "INFO_AGT_NOT_RESPONDING": "complaint: a reply, no look-up",
    "INFO_CANT_SEE_POLICY": "where to find a policy online (problem report)",
    "INFO_AUTO_POLICY_CANT_SEE_IN_ACCT": "where to find a policy online (problem report)",
    "INFO_BUSINESS_POLICY_CANT_SEE": "where to find a policy online (problem report)",
    "INFO_CANT_SEE_FARM_RANCH_POLICY": "where to find a policy online (problem report)",
    "INFO_LIFE_POLICY_CANNOT_SEE": "where to find a policy online (problem report)",
    "ST_HELLO": "greeting", "ST_HOW_IS_ABBY": "chit-chat", "ST_HOW_OLD_IS_ABBY": "chit-chat",
    "ST_IS_ABBY_REAL": "chit-chat", "ST_WHAT_CAN_ABBY_DO": "chit-chat", "ST_WHERE_DOES_ABBY_LIVE": "chit-chat",
    "ST_THANK_YOU": "chit-chat",
}
_ACID_T = {  # the user's own policy/bill/claim, or an action on it
    "INFO_ADD_HOUSE": "adds a house to the user's policy", "INFO_AMT_DUE": "the user's balance",
    "INFO_AUTO_PYMT_CANCEL": "stops the user's autopay", "INFO_AUTO_PYMT_SCHEDULE": "the user's next autopay",
    "INFO_BILLING_ACCT_NUM": "the user's account number", "INFO_BILL_DUE_DATE": "the user's due date",
    "INFO_CANCEL_CONFIRM": "status of the user's cancellation", "INFO_CANCEL_INS_POLICY": "cancels a policy",
    "INFO_CHANGE_AUTOPAY_DATE": "changes the autopay date", "INFO_CHANGE_BANK_ACCT": "changes bank details",
    "INFO_CHANGE_USERID": "changes the user id", "INFO_CL_ADJUSTER_INFO": "the adjuster of the user's claim",
    "INFO_CL_CHECK_STATUS": "the user's claim payment", "INFO_CL_CLAIM_FILED": "looks up a claim",
    "INFO_CL_FNOL": "files a claim", "INFO_CL_FNOL_AUTO_HAIL": "files a claim",
    "INFO_CL_RENTAL": "rental car on an open claim", "INFO_CL_SHOP_ADD_WORK": "authorises work on a claim",
    "INFO_CL_SHOP_SEND_ESTIMATE": "sends a claim's estimate", "INFO_CL_DRP_ASSIGN": "a claim's repair assignment",
    "INFO_CL_STATUS": "the user's claim status", "INFO_CL_UPDATE_INFO": "updates a claim",
    "INFO_CONFIRM_COVERAGE": "the user's coverage status", "INFO_CREDIT_CARD_CHANGE_NUM": "changes the card",
    "INFO_DEC_PAGE_NEEDED": "sends the user's declaration page", "INFO_DEDUCTIBLE": "the user's deductible",
    "INFO_DO_NOT_CONTACT": "removes the user from a mailing list", "INFO_ERS_CONTACT": "dispatches roadside help",
    "INFO_FIND_AGENT": "finds an agent near the user", "INFO_WHO_IS_MY_AGENT": "the user's agent",
    "INFO_FORGOT_USERID": "looks up the user's id", "INFO_GET_A_QUOTE_AUTO": "runs a quote",
    "INFO_GET_A_QUOTE_AUTO_NONOWNER": "runs a quote", "INFO_GET_A_QUOTE_CFR": "runs a quote",
    "INFO_GET_A_QUOTE_RENTERS": "runs a quote", "INFO_GET_A_QUOTE_RENTERS_PURCHASE": "buys a policy",
    "INFO_AST_PURCHASE": "buys a quoted policy", "INFO_HANDLING_FEE_REMOVE": "waives a fee on the account",
    "INFO_INS_CARD_PROOF": "the user's insurance card", "INFO_INS_CARD_SEND": "sends the user's card",
    "INFO_LETTER_OF_EXPERIENCE": "issues a letter for the user",
    "INFO_LIFE_BENEFICIARY_CHANGE": "changes a beneficiary",
    "INFO_LIFE_POLICY_AMT_DUE": "the user's balance", "INFO_LIFE_POLICY_AUTO_PYMT": "sets up autopay",
    "INFO_LIFE_POLICY_CANCEL": "cancels a policy", "INFO_MORTGAGE_CO_POI": "verifies a customer's coverage",
    "INFO_PAPERLESS_DOCS_STOP": "switches the account back to paper", "INFO_POLICY_DOC_NEEDED": "the user's documents",
    "INFO_POLICY_NUM": "the user's policy number", "INFO_PREMIUM_BREAKDOWN": "the user's premium breakdown",
    "INFO_PYMT_CONFIRM": "whether the user's payment went through", "INFO_PYMT_DUEDATE_CHANGE": "changes the due date",
    "INFO_PYMT_HISTORY": "the user's payment history", "INFO_PYMT_PROCESS_CHANGE": "changes the payment method",
    "INFO_PYMT_SETUP_AUTO_PYMT": "sets up autopay", "INFO_REFUND_CHECK": "the user's refund check",
    "INFO_REINSTATE_INS_POLICY": "reinstates a policy", "INFO_SPEAK_TO_REP": "transfers to a representative",
    "INFO_UPDATE_CONTACT_INFO": "updates the user's address", "INFO_UPDATE_EMAIL": "updates the user's email",
    "INFO_UPDATE_PHONE_NUM": "updates the user's phone", "INFO_UPDATE_LIENHOLDER": "updates the policy",
    "INFO_WHY_WAS_POLICY_CANCELLED": "the user's policy status",
}
_ACID_MIXED = [  # 'how do I X' (FAQ) and 'please X for me' (action) under one intent
    "INFO_ADD_REMOVE_INSURED", "INFO_ADD_REMOVE_VEHICLE", "INFO_ADD_VEHICLE_PROPERTY_PAPERLESS_BILLING",
    "INFO_AGENT_WRONG", "INFO_AST_QUOTE", "INFO_AUTO_COV_QUESTION", "INFO_BILLING_ACCT_NAME_EDIT",
    "INFO_CFR_QUESTION_GENERAL", "INFO_CHANGE_AGENT", "INFO_CL_COMPLAINT", "INFO_COLLECTIONS",
    "INFO_DELETE_DUPE_PYMT", "INFO_DIFFERENT_AMTS", "INFO_ERS", "INFO_ERS_REIMBURSE", "INFO_FORGOT_EMAIL",
    "INFO_GEN_POLICY_COV_QUESTION", "INFO_GET_A_QUOTE_OTHER", "INFO_INS_CARD_PRINT", "INFO_LOG_OUT",
    "INFO_KNOWYOURDRIVE_DEVICE_RETURN", "INFO_LIFE_CASH_OUT", "INFO_LIFE_INCR_COV", "INFO_LIFE_QUESTION_GENERAL",
    "INFO_LIFE_REFUND", "INFO_LIFE_UPDATE_CONTACT_INFO", "INFO_NAME_CHANGE", "INFO_PAPERLESS_DOCS_SETUP",
    "INFO_PAY_LIFE_INS", "INFO_POI_OLD", "INFO_PROFILE_SECTION", "INFO_SET_UP_ACCT", "INFO_TEEN_SAFE_DRIVER_SIGNUP",
    "INFO_TRANSFER_ACCT_BALANCE", "INFO_srtwentytwo",
]
ACID_MAP: dict[str, tuple[str | None, str]] = {
    **{k: (S, v) for k, v in _ACID_S.items()},
    **{k: (T, v) for k, v in _ACID_T.items()},
    **_drop_all(_ACID_MIXED, "mixes 'how do I ...' (FAQ) with 'do it for me' (action), or is vague"),
    **_drop_all(["YES", "NO", "ST_GENERAL_REQUEST"], "dialogue acknowledgements and openers, not requests"),
}


def read_leyzer(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        rows = csv.reader(io.StringIO(src.text(m, path)), delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        for row in rows:
            if len(row) >= 3:
                yield row[2], f"{row[0]}:{row[1]}"


LEYZER_MAP: dict[str, tuple[str | None, str]] = {
    **{f"Translate:{i}": (S, "translating a given phrase: a small model does it")
       for i in ["TranslateText", "TranslateTextFromLanguage", "TranslateTextFromLanguageToLanguage",
                 "TranslateTextToLanguage", "TranslateToLanguage"]},
    "Translate:DetectLanguage": (S, "naming the language of a given phrase"),
    "Translate:TranslateTextFromLanguageToLanguageWithEngine": (T, "asks for a named engine (google, yandex...)"),
    "Translate:SetDefaultLanguage": (T, "app setting"),
    "Translate:SetDefaultLanguageToLanguage": (T, "app setting"),
    "*": (T, "every other domain (calendar, email, contacts, phone, slack, spotify, weather, web/wiki "
             "search, youtube, ...) is an app action or live data"),
}


def read_tooltalk(src: Source, m: Mirrors) -> Iterator[Item]:
    """The first user turn of every conversation: later turns are slot answers or thanks."""
    for path in src.files(m):
        if not path.endswith(".json"):
            continue
        d = json.loads(src.text(m, path))
        for turn in d["conversation"]:
            if turn["role"] == "user":
                yield turn["text"], path.split("/")[1]
                break


def read_taskmaster4(src: Source, m: Mirrors) -> Iterator[Item]:
    """The first user turn of each coffee-ordering dialogue that carries the order (>= 4 words)."""
    for path in src.files(m):
        for dlg in json.loads(src.text(m, path)):
            prior: list[str] = []
            for u in dlg["utterances"]:
                if u["speaker"] != "user":
                    continue
                if len(u["text"].split()) >= 4:
                    yield u["text"], "coffee_order", prior[-2:]
                    break
                prior.append(u["text"])


# --------------------------------------------------------------------------------------------------
# Tool / API-use queries
# --------------------------------------------------------------------------------------------------

HOWTO_Q = re.compile(r"^(?:hi|hello|hey|ok|so)?[\s,!.]*(?:how (?:do|can|should|could|would) (?:i|we)|how to|"
                     r"what (?:do|should) i (?:need to )?do to)\b", re.I)

# ... but "how do I know when my payment is due" / "how can I get my policy number" is the look-up itself in
# how-to clothing: such items are dropped rather than guessed.
HOWTO_LOOKUP = re.compile(r"\bhow (?:do|can|could) i (?:know|find out|tell|see|check|get my|find my)\b", re.I)

_HOWTO = re.compile(r"^(?:hi|hello|hey)?[\s,!.]*(?:how (?:can|do|should|would|could) (?:i|we|you)|"
                    r"what (?:is|are) (?:the )?(?:best|some|good)|any (?:tips|suggestions|recommendations))\b", re.I)

_NOT_A_REQUEST = re.compile(r"^(?:yes|sure|certainly|of course|to (?:create|find|generate|get)|users? )\b", re.I)


def read_metatool(src: Source, m: Mirrors) -> Iterator[Item]:
    for row in csv.DictReader(io.StringIO(src.text(m, src.paths[0]))):
        query = row["Query"].strip().strip('"').strip()
        if _HOWTO.match(query):
            yield query, "how-to"
        elif _NOT_A_REQUEST.match(query):
            yield query, "not-a-request"
        else:
            yield query, row["Tool"]


# MetaTool's queries were written to need a ChatGPT plugin, but many plugins (advice, recommendations,
# writing help) get queries any small model answers.  Only plugins whose queries need live data, the
# user's own data, or an action are kept; every other plugin is dropped.
_METATOOL_TOOL = {
    "WeatherTool": "weather is live data",
    "airqualityforeast": "air-quality forecast: live data",
    "NewsTool": "latest news: live data",
    "EarthquakeTool": "recent earthquakes: live data",
    "ExchangeTool": "currency conversion at today's rate",
    "FinanceTool": "market quotes and charts: live data",
    "timemachine": "the current time somewhere",
    "locator": "where the ISS is now",
    "SASpeedCameras": "today's speed cameras and roadworks",
    "hdbcarpark": "free parking lots now",
    "AusPetrolPrices": "current petrol prices",
    "C3_Glide": "aviation weather reports (METAR/TAF)",
    "ApexMap": "the game's current map rotation",
    "themeparkhipster": "theme-park waiting times",
    "Broadway": "what is playing this week",
    "SuperchargeMyEV": "charger search near a place",
    "korea_subway": "route planning",
    "TripTool": "flight/hotel/car availability and booking",
    "smarttsicketsai": "ticket search",
    "Discount": "today's coupon codes",
    "tira": "a shop's current promotions",
    "ndricks_sports_api": "current rosters and stats",
    "talkfpl": "fantasy-league stats and the user's team",
    "Now": "what is trending right now",
    "socialsearch": "searching tweets",
    "ResearchFinder": "searching paper indexes",
    "ResearchHelper": "looking papers up by arXiv id",
    "CTCP": "clinical-trial registry lookups",
    "clinical_trial_radar": "ongoing clinical trials",
    "CompanyInfoTool": "company-registry lookups",
    "fundsdbsearch": "searching a funding database",
    "URLTool": "domain availability checks",
    "WebRewind": "archived snapshots of web pages",
    "hacktrack": "breach look-ups for the user's email",
    "hackit_web_scanner": "scanning a website",
    "website_performance_insights": "measuring a website",
    "competitorppcads": "ad-history look-ups",
    "bramework": "keyword statistics",
    "EmailByNylas": "the user's own mailbox",
    "clinq": "the user's own call log",
    "buildbetter": "the user's own meeting transcripts",
    "Magnetis": "the user's own portfolio",
    "portfoliopilot": "the user's own portfolio",
    "dart": "adds/updates tasks in the user's project tool",
    "PDF_Exporter": "exports the chat as a file",
    "exportchat": "exports the chat",
    "create_qr_code": "generates a QR image",
    "qreator": "generates a QR image",
    "GifApi": "searches a GIF service",
    "MapTool": "renders a map image",
    "WordCloud": "renders a word-cloud image",
    "abc_to_audio": "renders audio from notation",
    "speechki_tts_plugin": "text-to-speech audio",
    "heygen": "generates a video",
    "Visla": "generates a video",
    "SceneXplain": "describes an attached image",
    "VideoSummarizeTool": "needs the video's transcript",
    "SummarizeAnything_pr": "needs the linked video/PDF",
    "PDF&URLTool": "needs the linked PDF/URL",
}


def _metatool_map() -> dict[str, tuple[str | None, str]]:
    out: dict[str, tuple[str | None, str]] = {k: (T, v) for k, v in _METATOOL_TOOL.items()}
    out["not-a-request"] = (None, "assistant-voiced or third-person lines ('Sure! I can ...', 'Users frequently ...')")
    out["how-to"] = (None, "'How can I ...' / 'What are some good ...' phrasings ask for advice, whatever the plugin")
    out["*"] = (None, "plugin whose queries are mostly advice, recommendations or writing help a small model "
                      "answers, or a mix of those with real tool calls")
    return out


def read_stabletoolbench(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        if path.endswith(".json"):
            group = path.rsplit("/", 1)[1][:-5]
            for d in json.loads(src.text(m, path)):
                yield d["query"], group


def read_sealtools(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        for d in jsonl(src.text(m, path)):
            kind = "multi" if len(d.get("calling") or []) > 1 else "single"
            yield d["query"], kind


def read_toolalpaca(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        for api in json.loads(src.text(m, path)):
            for ins in api["Instructions"]:
                yield ins, api["Category"]


_TOOLQA_FILES = {  # file stem -> orig
    "agenda-easy": "agenda", "genda-hard": "agenda", "airbnb-easy": "airbnb", "airbnb-hard": "airbnb",
    "coffee-easy": "coffee", "coffee-hard": "coffee", "flight-easy": "flight", "flight-hard": "flight",
    "yelp-easy": "yelp", "yelp-hard": "yelp", "dblp-easy": "dblp", "dblp-hard": "dblp",
    "scirex-easy": "scirex", "scirex-hard": "scirex",
}


def read_toolqa(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        stem = path.rsplit("/", 1)[1].removesuffix(".jsonl")
        if stem not in _TOOLQA_FILES:  # the gsm8k files: a dev-set source, not read
            continue
        for d in jsonl(src.text(m, path)):
            yield d["question"], _TOOLQA_FILES[stem]


TOOLQA_MAP: dict[str, tuple[str | None, str]] = {
    "agenda": (T, "the user's own calendar"),
    "airbnb": (T, "listing look-ups in a listings database"),
    "coffee": (T, "daily coffee prices: a market-data table"),
    "flight": (T, "a flight-status database"),
    "yelp": (T, "business look-ups in a local-search database"),
    "dblp": (None, "questions about authors' papers read like general knowledge"),
    "scirex": (None, "questions about papers' reported scores read like general knowledge"),
}


# --------------------------------------------------------------------------------------------------
# Open-domain, chit-chat and instruction sets
# --------------------------------------------------------------------------------------------------

def read_truthfulqa(src: Source, m: Mirrors) -> Iterator[Item]:
    for row in csv.DictReader(io.StringIO(src.text(m, src.paths[0]))):
        yield row["Question"], row["Category"]


TRUTHFULQA_MAP: dict[str, tuple[str | None, str]] = {
    **_drop_all(["Indexical Error: Identity", "Indexical Error: Location", "Indexical Error: Other",
                 "Indexical Error: Time"],
                "questions about the assistant itself, 'the country' or 'now': need context or live data"),
    **_drop_all(["Confusion: Other", "Confusion: People", "Confusion: Places"],
                "riddle-like descriptions that chain several clues to a name"),
    "*": (S, "general-knowledge questions (misconceptions, health, law, history, ...)"),
}


_OTQ_NEEDS_OPTIONS = re.compile(r"\b(?:of the following|of these|following|which statement|of the choices|"
                                r"NOT|true or false)\b")
# puzzles; arithmetic mixed with trivia; and two lists that repeat the other categories
_OTQ_SKIP = ("brain-teasers", "for-kids", "newest", "rated")


def _unmojibake(text: str) -> str:
    """Undo UTF-8 that was once decoded as Windows-1252 ('â€œ' for a curly quote), where it cleanly can."""
    if "\u00e2\u20ac" not in text and "\u00c3" not in text:
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except UnicodeError:
        return text


def read_opentriviaqa(src: Source, m: Mirrors) -> Iterator[Item]:
    """Trivia questions without their options; only those phrased as a question (ending in '?')."""
    for path in src.files(m):
        cat = path.rsplit("/", 1)[1]
        if cat in _OTQ_SKIP:
            continue
        for block in src.text(m, path).split("#Q ")[1:]:
            q = _unmojibake(block.split("\n^", 1)[0].strip())
            if q.endswith("?") and "__" not in q and not _OTQ_NEEDS_OPTIONS.search(q):
                yield q, cat


def read_chatterbot(src: Source, m: Mirrors) -> Iterator[Item]:
    import yaml  # PyYAML: the corpus is YAML

    for path in src.files(m):
        if not path.endswith(".yml"):
            continue
        d = yaml.safe_load(src.text(m, path))
        cat = path.rsplit("/", 1)[1][:-4]
        for conv in d.get("conversations") or []:
            if conv and isinstance(conv[0], str):
                yield conv[0], cat


CHATTERBOT_MAP: dict[str, tuple[str | None, str]] = {
    "psychology": (None, "statements about the bot ('you are insecure'), not requests"),
    "coding": (None, "mostly one-word or 'what is X' prompts about programming terms; thin and odd"),
    "tech_support": (None, "OS/app troubleshooting lines, some of them imperatives for the device"),
    "*": (S, "chit-chat and small-talk questions"),
}


def read_topical_chat(src: Source, m: Mirrors) -> Iterator[Item]:
    """The opening message of each conversation (a question or a fact to chat about)."""
    for path in src.files(m):
        convs = json.loads(src.text(m, path))
        for key in sorted(convs):
            content = convs[key]["content"]
            if content:
                yield content[0]["message"], convs[key].get("config", "?")


def read_gpteacher(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        kind = path.split("/")[0]
        for d in json.loads(src.text(m, path)):
            text = d["instruction"].strip()
            if d.get("input", "").strip():
                text += "\n\n" + d["input"].strip()
            yield text, kind


WIZARDLM_MAP: dict[str, tuple[str | None, str]] = {
    "Code Debug": (R, "fixing code"),
    "Code Generation": (R, "writing code"),
    "Math": (R, "math problems"),
    "Reasoning": (R, "puzzles"),
    "Physics": (None, "mixes computations with concept questions"),
    "Chemistry": (None, "mixes multiple-choice computations with definitions"),
    "Complex Format": (None, "mixes code, tables and format conversions"),
    "Computer Science": (None, "mixes algorithm explanations with design questions"),
    "TruthfulQA": (None, "rewritten from another benchmark"),
    "Toxicity": (None, "provocations, not requests"),
    "*": (S, "knowledge questions, explanations, writing and role-play"),
}


def read_wizardlm(src: Source, m: Mirrors) -> Iterator[Item]:
    for d in jsonl(src.text(m, src.paths[0])):
        yield d["Instruction"], d["Skill"]


# --------------------------------------------------------------------------------------------------
# Reasoning: math, multi-hop, puzzles, code
# --------------------------------------------------------------------------------------------------

def read_svamp(src: Source, m: Mirrors) -> Iterator[Item]:
    for d in json.loads(src.text(m, src.paths[0])):
        body = d["Body"].strip()
        sep = "" if body.endswith((".", "?", "!")) else "."
        yield f"{body}{sep} {d['Question'].strip()}", d["Type"]


def read_asdiv(src: Source, m: Mirrors) -> Iterator[Item]:
    root = ET.fromstring(m.show(src.repo, src.commit, src.paths[0]))
    for p in root.iter("Problem"):
        body = (p.findtext("Body") or "").strip()
        q = (p.findtext("Question") or "").strip()
        yield f"{body} {q}".strip(), (p.findtext("Solution-Type") or "?").strip()


def read_aqua(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        for d in jsonl(src.text(m, path)):
            opts = " ".join(o.strip() for o in d["options"])
            yield f"{d['question'].strip()}\nOptions: {opts}", "aqua_rat"


def read_theoremqa(src: Source, m: Mirrors) -> Iterator[Item]:
    for d in json.loads(src.text(m, src.paths[0])):
        if d.get("Picture"):  # needs the figure
            continue
        yield d["Question"], d.get("field") or "?"


def read_fermi(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        kind = "realFP"  # synthFP is templated ("How many Gumball (packed) make Car?"): not read
        for d in json.loads(src.text(m, path)):
            yield d["question"], kind


def read_hotpot(src: Source, m: Mirrors) -> Iterator[Item]:
    for path in src.files(m):
        for d in json.loads(src.text(m, path)):
            yield d["question"], d.get("type") or "untyped"


def read_ar_lsat(src: Source, m: Mirrors) -> Iterator[Item]:
    letters = "ABCDE"
    for path in src.files(m):
        for group in json.loads(src.text(m, path)):
            passage = group["passage"].strip()
            for q in group["questions"]:
                opts = "\n".join(f"({letters[i]}) {o.strip()}" for i, o in enumerate(q["options"]))
                yield f"{passage}\n\n{q['question'].strip()}\n{opts}", "analytical_reasoning"


def read_odex(src: Source, m: Mirrors) -> Iterator[Item]:
    for d in jsonl(src.text(m, src.paths[0])):
        yield d["intent"], "python_intent"


def read_conala(src: Source, m: Mirrors) -> Iterator[Item]:
    """CoNaLa's `intent` is the Stack Overflow question title, the way a user asked it."""
    for path in src.files(m):
        for d in json.loads(src.text(m, path)):
            if d.get("intent"):
                yield d["intent"], "so_title"


# --------------------------------------------------------------------------------------------------
# The sources, in build order (earlier sources win cross-source duplicates)
# --------------------------------------------------------------------------------------------------

_UNIFORM_T = {"*": (T, "every query needs the API/tool the set was written for")}

SOURCES: list[Source] = [
    # ---- tool_use and mixed assistant intents
    Source(
        name="slurp", repo="pswietojanski/slurp", commit="8eb16545762be97ace75334109d73824217311f1",
        license="CC BY 4.0",
        license_quote="Textual part of this dataset is released under Creative Commons Attribution 4.0 "
                      "International (CC BY 4.0) license.",
        attribution="SLURP, Bastianelli et al. 2020 (EMNLP)",
        paths=("dataset/slurp/devel.jsonl", "dataset/slurp/test.jsonl"),
        read=read_slurp, mapping=SLURP_MAP, cap=1500,
        what="spoken assistant requests, 18 scenarios (devel+test; train.jsonl is over the mirror's size limit)",
    ),
    Source(
        name="hint3", repo="hellohaptik/HINT3", commit="99965c892ea9a6801a87083d3861b0b04c91a4e7",
        license="ODbL 1.0",
        license_quote="HINT3 dataset is made available under the Open Database License: "
                      "http://opendatacommons.org/licenses/odbl/1.0/.",
        attribution="HINT3, Arora et al. 2020 (Haptik), Insights from NLP Systems workshop",
        paths=("dataset/v2/train/", "dataset/v2/test/"),
        read=read_hint3, mapping=HINT3_MAP, cap=1200, howto_simple=True,
        what="customer-support chatbot queries of three Indian shops/apps (v2)",
    ),
    Source(
        name="acid", repo="AmFamMLTeam/ACID", commit="66bc5e0afa33495d8c61fba76b8c551af84bfa6e",
        license="none stated",
        license_quote="(the repository has no LICENSE file; its README asks to cite the KDD Converse 2020 paper)",
        attribution="ACID, Acharya & Fung 2020 (American Family Insurance), KDD Converse workshop",
        paths=("customer_training.csv", "customer_testing.csv"),
        read=read_acid, mapping=ACID_MAP, train=False, cap=1200, howto_simple=True,
        what="insurance-customer chatbot requests, 175 intents",
    ),
    Source(
        name="leyzer", repo="cartesinus/leyzer", commit="615ccf1398c7e32b49e089d45da824d01179c50d",
        license="CC BY-NC-ND 4.0",
        license_quote="Attribution-NonCommercial-NoDerivatives 4.0 International",
        attribution="Leyzer, Sowański & Janicki 2020 (TSD)",
        paths=("corpora/0.1.0/leyzer-train-en-US-0.1.0.tsv", "corpora/0.1.0/leyzer-dev-en-US-0.1.0.tsv",
               "corpora/0.1.0/leyzer-test-en-US-0.1.0.tsv"),
        read=read_leyzer, mapping=LEYZER_MAP, train=False, cap=900,
        what="virtual-assistant commands over 20 apps, 186 intents (en-US)",
    ),
    Source(
        name="tooltalk", repo="microsoft/ToolTalk", commit="e05f4ce6132c80ed33392b81535b077d56ab28fd",
        license="MIT",
        license_quote="MIT License  Copyright (c) Microsoft Corporation.",
        attribution="ToolTalk, Farn & Shin 2023 (Microsoft)",
        paths=("data/easy/", "data/tooltalk/"),
        read=read_tooltalk, mapping={"*": (T, "every opening turn asks the assistant to use the user's "
                                               "calendar, email, alarms, account, messages or weather")},
        what="opening user turns of tool-using conversations (alarms, calendar, email, account, weather)",
    ),
    Source(
        name="taskmaster4", repo="google-research-datasets/Taskmaster",
        commit="d92cb6af3005f1dc09c39e75e7daf4a04905e00b",
        license="CC BY 4.0",
        license_quote="made available under the Creative Commons Attribution 4.0 License",
        attribution="Taskmaster-4, Byrne & Ganesh 2024 (Google)",
        paths=("TM-4-2024/data/",),
        read=read_taskmaster4, mapping={"coffee_order": (T, "places an order with the shop's system")},
        cap=500,
        what="first user turn of coffee-ordering dialogues (TM-1/2/3 are over the mirror's size limit)",
    ),
    Source(
        name="metatool", repo="HowieHwong/MetaTool", commit="35e81bb7576826e980c80fed8f8c0a2b4a1e6fbb",
        license="MIT", license_quote="MIT License  Copyright (c) 2023 Yue Huang",
        attribution="MetaTool, Huang et al. 2024 (ICLR)",
        paths=("dataset/data/all_clean_data.csv",),
        read=read_metatool, mapping=_metatool_map(), cap=1200,
        what="user queries written for ChatGPT plugins; only plugins needing live data/actions kept",
    ),
    Source(
        name="stabletoolbench", repo="THUNLP-MT/StableToolBench",
        commit="aa4ed9f4737ad98bd706663f01d63623c3427812",
        license="Apache-2.0", license_quote="Apache License Version 2.0, January 2004",
        attribution="StableToolBench, Guo et al. 2024; queries from ToolBench, Qin et al. 2023",
        paths=("solvable_queries/test_instruction/",),
        read=read_stabletoolbench, mapping=_UNIFORM_T, cap=1000,
        what="solvable test queries over RapidAPI tools (single-tool, intra-category, multi-tool)",
    ),
    Source(
        name="seal_tools", repo="fairyshine/Seal-Tools", commit="ce753ecd60ed08dd376984035de531ab8421f1c6",
        license="Apache-2.0", license_quote="Apache License Version 2.0, January 2004",
        attribution="Seal-Tools, Wu et al. 2024 (NLPCC)",
        paths=("Seal-Tools_Dataset/dev.jsonl", "Seal-Tools_Dataset/test_in_domain.jsonl",
               "Seal-Tools_Dataset/test_out_domain.jsonl"),
        read=read_sealtools, cap=900,
        mapping={"multi": (T, "chains two or more tool calls: actions and look-ups on given ids"),
                 "single": (None, "single-call queries are often plain knowledge requests dressed for a tool "
                                  "('Provide the phonetic symbols for the word \"elephant\"')")},
        what="multi-call tool requests (dev + tests; single-call ones and train not used)",
    ),
    Source(
        name="toolalpaca", repo="tangqiaoyu/ToolAlpaca", commit="189069998d64a7baf1b4a1c3c4b2e75eb9d05532",
        license="Apache-2.0", license_quote="Apache License Version 2.0, January 2004",
        attribution="ToolAlpaca, Tang et al. 2023",
        paths=("data/eval_real.json", "data/eval_simulated.json"),
        read=read_toolalpaca, mapping=_UNIFORM_T,
        what="instructions for public REST APIs (evaluation sets; train is over the size limit)",
    ),
    Source(
        name="toolqa", repo="night-chen/ToolQA", commit="acf55534d6dcd81df84df7b5d01ebdd14508367a",
        license="Apache-2.0", license_quote="Apache License Version 2.0, January 2004",
        attribution="ToolQA, Zhuang et al. 2023 (NeurIPS Datasets and Benchmarks)",
        paths=("data/questions/easy/", "data/questions/hard/"),
        read=read_toolqa, mapping=TOOLQA_MAP, cap=1000,
        what="questions answerable only from external tables/databases (flights, agenda, yelp, ...)",
    ),
    # ---- simple
    Source(
        name="truthfulqa", repo="benedictflorance/truthfulqa_experiments",
        commit="6fdfd38288e86296582a584694df5cf43d1f634a",
        license="Apache-2.0 (TruthfulQA's own license; this copy's repository states none)",
        license_quote="TruthfulQA (github.com/sylinrl/TruthfulQA) is released under the Apache-2.0 license",
        attribution="TruthfulQA, Lin, Hilton & Evans 2022 (ACL); copy in benedictflorance/truthfulqa_experiments",
        paths=("datasets/TruthfulQA.csv",),
        read=read_truthfulqa, mapping=TRUTHFULQA_MAP,
        what="general-knowledge questions across 38 categories",
    ),
    Source(
        name="opentriviaqa", repo="uberspot/OpenTriviaQA", commit="dd31530bfbb19f9505b160b89c9df4b1127e3c70",
        license="CC BY-SA 4.0",
        license_quote=("This work is licensed under the Creative Commons Attribution-ShareAlike 4.0 International "
                       "License."),
        attribution="OpenTriviaQA, uberspot and contributors",
        paths=("categories/",),
        read=read_opentriviaqa, mapping={"*": (S, "short general-knowledge trivia questions")}, cap=1200,
        what="trivia questions (options stripped; only items that read as questions without them)",
    ),
    Source(
        name="chatterbot", repo="gunthercox/chatterbot-corpus",
        commit="a01efece26661309b870af0251d96f94ee09fb19",
        license="BSD-3-Clause", license_quote="Copyright (c) 2017, Gunther Cox All rights reserved. "
                                              "Redistribution and use in source and binary forms, with or "
                                              "without modification, are permitted ...",
        attribution="ChatterBot corpus, Gunther Cox and contributors",
        paths=("chatterbot_corpus/data/english/",),
        read=read_chatterbot, mapping=CHATTERBOT_MAP,
        what="small-talk openers (greetings, humor, AI, food, movies, ...)",
    ),
    Source(
        name="topical_chat", repo="alexa/Topical-Chat", commit="7c939229cbcf6f55f6977b341a5a2f2fe982d53f",
        license="CDLA-Sharing-1.0",
        license_quote="datasets provided in this repository are licensed under the Community Data License "
                      "Agreement - Sharing - Version 1.0",
        attribution="Topical-Chat, Gopalakrishnan et al. 2019 (Amazon Alexa AI)",
        paths=("conversations/valid_freq.json", "conversations/valid_rare.json",
               "conversations/test_freq.json", "conversations/test_rare.json"),
        read=read_topical_chat, mapping={"*": (S, "chit-chat openers about a topic")}, cap=1200,
        what="opening turns of knowledge-grounded chit-chat (valid+test; train is over the size limit)",
    ),
    Source(
        name="gpteacher_roleplay", repo="teknium1/GPTeacher", commit="481075123c29854bddb82655badeef6a438f2436",
        license="MIT", license_quote="MIT License  Copyright (c) 2023 Teknium",
        attribution="GPTeacher, Teknium",
        paths=("Roleplay/roleplay-simple-deduped-roleplay-instruct.json",),
        read=read_gpteacher, mapping={"Roleplay": (S, "role-play and creative writing")}, cap=1200,
        what="role-play and creative-writing instructions",
    ),
    Source(
        name="wizardlm_test", repo="nlpxucan/WizardLM", commit="cd4b4cc022b6426aee62d51f7ae99a4a6ec9aaef",
        license="CC BY-NC 4.0", license_quote="Attribution-NonCommercial 4.0 International (WizardLM/DATA_LICENSE)",
        attribution="WizardLM test set, Xu et al. 2023",
        paths=("WizardLM/data/WizardLM_testset.jsonl",),
        read=read_wizardlm, mapping=WIZARDLM_MAP, train=False,
        what="human-written instructions labeled with a skill",
    ),
    # ---- reasoning
    Source(
        name="svamp", repo="arkilpatel/SVAMP", commit="689d7ccac74b9983a2ac7cc3b264f441b99e7c53",
        license="MIT", license_quote="MIT License  Copyright (c) 2021 Arkil Patel",
        attribution="SVAMP, Patel, Bhattamishra & Goyal 2021 (NAACL)",
        paths=("SVAMP.json",), read=read_svamp, cap=600,
        mapping={"*": (R, "math word problems")},
        what="elementary math word problems with structural variations",
    ),
    Source(
        name="asdiv", repo="chaochun/nlu-asdiv-dataset", commit="883f90a9a65bf00304ba8f37423910fe743abc47",
        license="CC BY-NC 4.0", license_quote="This dataset is released under the CC BY-NC 4.0 license",
        attribution="ASDiv, Miao, Liang & Su 2020 (ACL)",
        paths=("dataset/ASDiv.xml",), read=read_asdiv, train=False, cap=500,
        mapping={"*": (R, "math word problems")},
        what="diverse elementary math word problems",
    ),
    Source(
        name="aqua_rat", repo="google-deepmind/AQuA", commit="26b64ed1f22208c6742f47df547dfd65088ec30d",
        license="Apache-2.0", license_quote="Licensed under the Apache License, Version 2.0",
        attribution="AQuA-RAT, Ling et al. 2017 (ACL)",
        paths=("dev.json", "test.json"), read=read_aqua,
        mapping={"*": (R, "algebra word problems with answer options")},
        what="multiple-choice algebra word problems (dev+test; train is over the size limit)",
    ),
    Source(
        name="theoremqa", repo="wenhuchen/TheoremQA", commit="585c960f647b3cae8b37ff71fd9dac45ce4b4e91",
        license="MIT", license_quote="MIT License  Copyright (c) 2023 wenhu chen",
        attribution="TheoremQA, Chen et al. 2023 (EMNLP)",
        paths=("theoremqa_test.json",), read=read_theoremqa, cap=600,
        mapping={"*": (R, "university math/physics/EE/finance problems")},
        what="theorem-driven STEM problems (items that need a picture skipped)",
    ),
    Source(
        name="fermi", repo="allenai/fermi", commit="dfd4ceec41ef5fa0fe63e24c6027f13730d39a36",
        license="none stated", license_quote="(the repository has no LICENSE file and its README names none)",
        attribution="Fermi problems, Kalyan et al. 2021 (EMNLP), Allen Institute for AI",
        paths=("data/realFP/train_realfp.json", "data/realFP/val_realfp.json", "data/realFP/test_realfp.json"),
        read=read_fermi, train=False, cap=600,
        mapping={"*": (R, "estimation problems that chain several facts and computations")},
        what="Fermi estimation problems asked by people (realFP; the templated synthFP is not used)",
    ),
    Source(
        name="hotpotqa", repo="ysymyth/ReAct", commit="6bdb3a1fd38b8188fc7ba4102969fe483df8fdc9",
        license="CC BY-SA 4.0 (HotpotQA); MIT (this repository)",
        license_quote="MIT License  Copyright (c) 2023 Shunyu Yao; HotpotQA is distributed under CC BY-SA 4.0",
        attribution="HotpotQA, Yang et al. 2018 (EMNLP); simplified copy from ReAct, Yao et al. 2023",
        paths=("data/hotpot_dev_v1_simplified.json",),
        read=read_hotpot, cap=1000,
        mapping={"bridge": (R, "multi-hop: a fact about an entity found through another fact"),
                 "comparison": (R, "compares two entities' facts")},
        what=("multi-hop Wikipedia questions, bridge and comparison (dev; the untyped test split holds "
              "single-hop-looking items)"),
    ),
    Source(
        name="ar_lsat", repo="zhongwanjun/AR-LSAT", commit="41f78ca7be3e24602b694b9d6b78105fc0c8bfc6",
        license="MIT", license_quote="MIT License  Copyright (c) 2022 Wanjun Zhong",
        attribution="AR-LSAT, Zhong et al. 2021; questions from LSAT analytical-reasoning sections",
        paths=("data/AR_TrainingData.json", "data/AR_DevelopmentData.json", "data/AR_TestData.json"),
        read=read_ar_lsat, cap=500,
        mapping={"*": (R, "constraint puzzles (ordering, grouping) with answer options")},
        what="analytical-reasoning puzzles: passage, question, five options",
    ),
    Source(
        name="odex", repo="zorazrw/odex", commit="21308ea6d474a078d5a85c61c2b5ca228d1fd167",
        license="CC BY-SA 4.0", license_quote="Attribution-ShareAlike 4.0 International",
        attribution="ODEX, Wang et al. 2023 (EMNLP Findings)",
        paths=("data/en_test.jsonl",), read=read_odex, cap=900,
        mapping={"*": (R, "asks for a piece of Python code")},
        what="open-domain Python coding intents (English)",
    ),
    Source(
        name="conala", repo="shilliscmu/TranxConalaBaseline", commit="5520285387d946e826f4cc5a4a0a1bf7361355e5",
        license="CC BY-SA 4.0 (CoNaLa's data license; this copy's repository states none)",
        license_quote="CoNaLa annotated data (conala-corpus) is released under CC BY-SA 4.0",
        attribution="CoNaLa, Yin et al. 2018 (MSR); copy in shilliscmu/TranxConalaBaseline",
        paths=("conala-train.json", "conala-test.json"), read=read_conala, cap=1000,
        mapping={"*": (R, "Stack Overflow 'how do I ... in Python' questions: code")},
        what="Stack Overflow question titles asking for Python code",
    ),
    Source(
        name="gpteacher_code", repo="teknium1/GPTeacher", commit="481075123c29854bddb82655badeef6a438f2436",
        license="MIT", license_quote="MIT License  Copyright (c) 2023 Teknium",
        attribution="GPTeacher, Teknium",
        paths=("Codegen/codegen-instruct.json",), read=read_gpteacher, cap=900,
        mapping={"Codegen": (R, "write, fix or explain code")},
        what="coding instructions in many languages",
    ),
]

BY_NAME = {s.name: s for s in SOURCES}
