"""A crawler for the web tests: follows every link and submits every form with garbage,
checking each page it reaches is Japanese, free of server errors and of the markers of
data the session must not see (tests/edge/test_crawl_roles.py, tests/cloud/)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlparse

import httpx

GARBAGE = "'\"><script>x</script>%00ｱ 𠮷 ../../etc " + "9" * 40
MAX_PAGES = 120
# Never followed: ending the session, and acts whose garbage submission is not garbage
# enough to be harmless to the other roles' crawls (none at present besides logout).
SKIP = {"/logout", "/operator/logout"}

# ASCII words a person may legitimately read on a Japanese screen: abbreviations used in
# Japanese offices, product and file names, and the technical ids the screens show.
ALLOWED_WORDS = {
    "PDF",
    "QR",
    "CSV",
    "ID",
    "IDs",
    "CUPS",
    "HTTPS",
    "IPAmj",
    "JSON",
    "ZIP",
    "OS",
    "PC",
    "mm",
    "renkei",
    "export",
    "open",
    "reconcile",
    "hub",
    "operator",
    "add",
    "rkx",
    "box",
    "clerk",
    "registers",
    "emergency",
    "juminhyo",
}
ENGLISH_UI = re.compile(
    r"\b(Error|Internal|Server|Not Found|Forbidden|Method Not Allowed|Traceback|Submit|"
    r"Login|Logout|Password|Search|Cancel|Back|Home|None|True|False|undefined|null|"
    r"Unauthorized|Bad Request|Exception)\b"
)
WORD = re.compile(r"[A-Za-z][A-Za-z_-]{2,}")
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


class _Page(HTMLParser):
    """Links, forms and the visible text of a page (code, script and style left out, and
    any element marked translate="no": names of things that are data, such as a CUPS
    queue's name in a <select>, where <code> cannot go)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.forms: list[dict[str, object]] = []
        self.text: list[str] = []
        self.lang = ""
        self._skip = 0
        self._untranslated: list[str] = []  # open elements marked translate="no"
        self._form: dict[str, object] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang", "")
        if tag in ("script", "style", "code", "pre"):
            self._skip += 1
        if a.get("translate") == "no":
            self._untranslated.append(tag)
            self._skip += 1
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "form":
            self._form = {
                "action": a.get("action", ""),
                "method": a.get("method", "get").lower(),
                "fields": [],
                "buttons": [],
            }
            self.forms.append(self._form)
        if self._form is not None and tag in ("input", "select", "textarea") and a.get("name"):
            kind = a.get("type", "text")
            if kind == "submit":
                self._form["buttons"].append((a["name"], a.get("value", "")))  # type: ignore[union-attr]
            else:
                self._form["fields"].append((a["name"], kind, a.get("value", "")))  # type: ignore[union-attr]
        if self._form is not None and tag == "button" and a.get("name"):
            self._form["buttons"].append((a["name"], a.get("value", "")))  # type: ignore[union-attr]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code", "pre"):
            self._skip = max(0, self._skip - 1)
        if self._untranslated and self._untranslated[-1] == tag:
            self._untranslated.pop()
            self._skip = max(0, self._skip - 1)
        if tag == "form":
            self._form = None

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def page_text(html: str) -> str:
    """The text a person reads on the page, as the crawl checks it."""
    return " ".join(_parse(html).text)


def _english(text: str, logins: set[str]) -> list[str]:
    """English words a person would read, after removing ids and allowed abbreviations."""
    text = re.sub(r"[\w.+-]*[._:@/][\w.:@/+-]*", " ", text)  # ids: seiro.tanaka, box:B01, paths
    leaks = [m.group(0) for m in ENGLISH_UI.finditer(text)]
    echoed = set(WORD.findall(GARBAGE))  # what the crawler typed, shown back escaped
    words = [w for w in WORD.findall(text) if w not in ALLOWED_WORDS | echoed and w not in logins]
    return leaks + words


class Crawl:
    def __init__(
        self, client: httpx.Client, base: str, foreign: list[str], logins: set[str]
    ) -> None:
        self.client = client
        self.base = base
        self.foreign = foreign
        self.logins = logins
        self.seen: set[str] = set()
        self.problems: list[str] = []
        self.pages = 0

    def check(self, url: str, response: httpx.Response) -> _Page | None:
        if response.status_code >= 500:
            self.problems.append(f"{url}: HTTP {response.status_code}")
            return None
        if not response.headers.get("content-type", "").startswith("text/html"):
            return None
        html = response.text
        page = _parse(html)
        text = " ".join(page.text)
        if page.lang != "ja" or not JAPANESE.search(text):
            self.problems.append(f"{url}: not a Japanese page")
        english = _english(text, self.logins)
        if english:
            self.problems.append(f"{url}: English on screen {sorted(set(english))[:8]}")
        for marker in self.foreign:
            if marker in html and marker not in url:  # not merely the query echoed back
                self.problems.append(f"{url}: another town's data {marker!r}")
                break
        return page

    def visit(self, start: list[str]) -> None:
        queue = list(start)
        while queue and self.pages < MAX_PAGES:
            url = queue.pop(0)
            path = urlparse(url).path
            if url in self.seen or path in SKIP:
                continue
            self.seen.add(url)
            self.pages += 1
            response = self.client.get(url)
            page = self.check(url, response)
            if page is None:
                continue
            for href in page.links:
                target = urldefrag(urljoin(url, href)).url
                parsed = urlparse(target)
                if parsed.netloc and parsed.netloc != urlparse(self.base).netloc:
                    continue
                local = parsed.path + (f"?{parsed.query}" if parsed.query else "")
                if local not in self.seen:
                    queue.append(local)
            for form in page.forms:
                self.submit(url, form)

    def submit(self, url: str, form: dict[str, object]) -> None:
        action = urljoin(url, str(form["action"]) or url)
        path = urlparse(action).path
        if path in SKIP:
            return
        data: dict[str, str] = {}
        for name, _kind, value in form["fields"]:  # type: ignore[attr-defined]
            data[name] = value if name == "csrf_token" else GARBAGE
        buttons = form["buttons"] or [("", "")]  # type: ignore[truthy-bool]
        for name, value in buttons:  # type: ignore[attr-defined]
            body = dict(data, **({name: value} if name else {}))
            if form["method"] == "post":
                response = self.client.post(path, data=body)
            else:
                response = self.client.get(path, params=body)
            self.check(f"{form['method'].upper()} {path} {name}={value}", response)  # type: ignore[attr-defined]


