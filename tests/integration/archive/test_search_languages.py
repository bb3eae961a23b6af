"""Words in many languages, through a real store, extraction workers and Xapian index: each
language's message is found by a word whole, by a part where the language joins words,
without accents (or case, or width), and by a phrase in any field and in its own field.
Each query must find exactly its own language's message."""
from email.message import EmailMessage

import pytest

from tests.integration.archive.indexed import indexed_archive, names_found


pytestmark = pytest.mark.integration


def mail(language, subject, body, attachment=None):
    message = EmailMessage()
    message["From"], message["To"] = f"{language}@example.com", "archive@example.net"
    message["Subject"], message["Message-ID"] = subject, f"<{language}@example.com>"
    message["Date"] = "Mon, 04 Mar 2024 10:00:00 +0000"
    message.set_content(body)
    if attachment:
        name, text = attachment
        message.add_attachment(text.encode(), maintype="text", subtype="plain", filename=name)
    return message.as_bytes()


CORPUS = {
    "ja": mail("ja", "来週の会議手続きについて",
               "皆様、来週の会議の手続きを確認してください。予算案は添付のとおりです。カタカナ",
               ("会議資料.txt", "会議室の予約は総務部が行います。")),
    "zh": mail("zh", "预算报告", "我们下周开会讨论预算报告。请准时参加。",
               ("销售.txt", "第三季度的销售额增长了百分之十。")),
    "ko": mail("ko", "주간 회의 안내", "내일 회의를 시작합니다. 예산 보고서를 확인하세요.",
               ("보고서.txt", "매출이 크게 늘었습니다.")),
    "th": mail("th", "รายงานการประชุม", "รายงานยอดขายประจำเดือนพร้อมแล้ว",
               ("สรุป.txt", "กรุณาตรวจสอบเอกสารแนบ")),
    "de": mail("de", "Übersicht für Herrn Müller",
               "Die E-Mail-Adresse von Frau Groß in der Hauptstraße ist geändert.",
               ("Bestellübersicht.txt", "Lieferung an die Königsallee")),
    "fr": mail("fr", "Résumé du trimestre",
               "Aujourd'hui, l'équipe présente le résumé d'études de l'été.",
               ("bilan-été.txt", "Le défi de la sécurité")),
    "es": mail("es", "Reunión de otoño",
               "El niño comió piñones el año pasado; la reunión hispano-americana es mañana.",
               ("pequeño.txt", "La canción del corazón")),
    "pl": mail("pl", "Żółta łódź",
               "Zażółć gęślą jaźń. Spotkanie w Łodzi jest biało-czerwone.",
               ("źródło.txt", "Sprawozdanie z Wrocławia")),
    "tr": mail("tr", "İzmir toplantısı",
               "İstanbul'da ılık bir gün. Işık ve ISPARTA'dan haber geldi.",
               ("çalışma.txt", "Şirketin yıllık raporu")),
    "el": mail("el", "ΟΔΥΣΣΕΥΣ και Πηνελόπη",
               "Η συνάντηση στην Αθήνα είναι αύριο. Ο Οδυσσέας έφυγε.",
               ("έκθεση.txt", "Η οικονομική κατάσταση βελτιώνεται")),
}

WHOLE = [  # a word as written, in the subject, the body and an attachment
    ("ja", "手続き"), ("ja", "予算案"), ("ja", "会議室"),
    ("zh", "预算报告"), ("zh", "销售额"),
    ("ko", "회의를"), ("ko", "보고서를"), ("ko", "매출이"),
    ("th", "ยอดขาย"), ("th", "รายงาน"), ("th", "เอกสาร"),
    ("de", "Müller"), ("de", "E-Mail-Adresse"), ("de", "Hauptstraße"), ("de", "Königsallee"),
    ("fr", "Aujourd'hui"), ("fr", "aujourd’hui"), ("fr", "l'équipe"), ("fr", "sécurité"),
    ("es", "niño"), ("es", "hispano-americana"), ("es", "canción"),
    ("pl", "Zażółć"), ("pl", "biało-czerwone"), ("pl", "Wrocławia"),
    ("tr", "İstanbul'da"), ("tr", "ılık"), ("tr", "Şirketin"),
    ("el", "Αθήνα"), ("el", "συνάντηση"), ("el", "οικονομική"),
]
PARTS = [  # a part of what the language writes as one word
    ("ja", "会議"), ("ja", "予算"), ("ja", "手続"), ("ja", "予約"), ("ja", "総務"),
    ("zh", "预算"), ("zh", "报告"), ("zh", "讨论"), ("zh", "销售"),
    ("ko", "회의"), ("ko", "보고서"), ("ko", "시작"), ("ko", "매출"),
    ("th", "ขาย"), ("th", "ประชุม"), ("th", "ตรวจสอบ"),
    ("de", "Adresse"), ("de", "mail"),
    ("fr", "hui"), ("fr", "équipe"), ("fr", "études"), ("fr", "été"),
    ("es", "americana"), ("es", "hispano"),
    ("pl", "czerwone"), ("pl", "biało"),
    ("tr", "İstanbul"), ("tr", "ISPARTA"),
]
FOLDED = [  # without accents, in another case, or another width
    ("ja", "ｶﾀｶﾅ"), ("ja", "カタカナ"),
    ("de", "muller"), ("de", "MULLER"), ("de", "müller"), ("de", "gross"), ("de", "GROSS"),
    ("de", "hauptstrasse"), ("de", "ubersicht"), ("de", "konigsallee"), ("de", "geandert"),
    ("fr", "etudes"), ("fr", "ÉTUDES"), ("fr", "equipe"), ("fr", "ete"), ("fr", "resume"),
    ("fr", "securite"),
    ("es", "nino"), ("es", "NIÑO"), ("es", "reunion"), ("es", "manana"), ("es", "pinones"),
    ("es", "cancion"), ("es", "corazon"),
    ("pl", "zazolc"), ("pl", "gesla"), ("pl", "jazn"), ("pl", "lodzi"), ("pl", "ZOLTA"),
    ("pl", "wroclawia"), ("pl", "lodz"),
    # Turkish: the dotted capital İ and the dotless ı, typed either way
    ("tr", "istanbul"), ("tr", "ISTANBUL"), ("tr", "ıstanbul"), ("tr", "ilik"), ("tr", "ILIK"),
    ("tr", "isik"), ("tr", "IŞIK"), ("tr", "isparta"), ("tr", "ısparta"), ("tr", "izmir"),
    ("tr", "İZMİR"), ("tr", "sirketin"), ("tr", "yillik"),
    # Greek: accents, capitals and the final sigma
    ("el", "αθηνα"), ("el", "ΑΘΗΝΑ"), ("el", "συναντηση"), ("el", "οδυσσευς"),
    ("el", "Οδυσσεύς"), ("el", "οδυσσεασ"), ("el", "πηνελοπη"), ("el", "οικονομικη"),
]
PHRASES = [  # phrases anywhere and in the field that holds them
    ("ja", '"会議の手続き"'), ("ja", 'body:"会議の手続き"'), ("ja", 'subject:"会議手続き"'),
    ("ja", 'attachment:"総務部が行います"'),
    ("zh", '"讨论预算报告"'), ("zh", 'body:"讨论预算"'), ("zh", 'attachment:"销售额增长"'),
    ("ko", '"예산 보고서"'), ("ko", 'body:"회의를 시작합니다"'), ("ko", 'subject:"회의 안내"'),
    ("th", '"ยอดขายประจำเดือน"'), ("th", 'body:"รายงานยอดขาย"'),
    ("th", 'attachment:"ตรวจสอบเอกสาร"'),
    ("de", '"Frau Groß"'), ("de", 'body:"frau gross"'), ("de", 'subject:"herrn muller"'),
    ("de", 'attachment:"an die konigsallee"'),
    ("fr", '"résumé d\'études"'), ("fr", 'body:"le resume d\'etudes"'),
    ("fr", 'attachment:"le defi"'),
    ("es", '"el año pasado"'), ("es", 'body:"el ano pasado"'), ("es", 'subject:"reunion de otono"'),
    ("pl", '"zażółć gęślą jaźń"'), ("pl", 'body:"zazolc gesla jazn"'),
    ("tr", '"ılık bir gün"'), ("tr", 'body:"ilik bir gun"'), ("tr", 'subject:"izmir toplantisi"'),
    ("el", '"στην Αθήνα"'), ("el", 'body:"στην αθηνα"'),
    ("el", 'subject:"οδυσσευς και πηνελοπη"'), ("el", 'attachment:"οικονομικη κατασταση"'),
]
FILENAMES = [
    ("ja", "filename:会議資料.txt"), ("ja", "filename:資料"), ("zh", "filename:销售.txt"),
    ("de", "filename:bestellubersicht.txt"), ("fr", "filename:bilan-ete.txt"),
    ("fr", "filename:ete"), ("es", "filename:pequeno.txt"), ("pl", "filename:zrodlo*"),
    ("tr", "filename:calisma.txt"), ("el", "filename:εκθεση.txt"), ("ko", "filename:보고서*"),
]
NOT_FOUND = [  # what must not match: a phrase out of order, a word in another field
    '"手続きの会議"', 'subject:"frau gross"', 'body:"herrn muller"', '"gün bir ılık"',
    "subject:αθηνα", '"ano el pasado"',
]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    opened = indexed_archive(tmp_path_factory.mktemp("data"), CORPUS)  # named by language
    yield opened
    opened.close()


def found(archive, query):
    return sorted(names_found(archive, query, limit=100))


@pytest.mark.parametrize("language, query", WHOLE + PARTS + FOLDED + PHRASES + FILENAMES)
def test_each_language_is_found(archive, language, query):
    assert found(archive, query) == [language]


@pytest.mark.parametrize("query", NOT_FOUND)
def test_phrases_keep_their_order_and_fields_their_text(archive, query):
    assert found(archive, query) == []
