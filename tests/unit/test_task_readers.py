"""Tests for reading fine-tuning data (`input_pipeline/tasks`: readers, formats, labels).

References: TFDS's own GLUE builder (`Glue._generate_examples`, which reads the TSV files GLUE
distributes) and CoNLL builder (`conll2003`), run on the same files we read; TFDS's GLUE, SNLI,
MultiNLI and CoNLL-2003 builders served offline by `tfds.testing.mock_data`; and, for KLUE-NER,
the inline `<entity:TAG>` marks of the file's own sentence lines.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from input_pipeline.tasks.fields import Fields
from input_pipeline.tasks.formats import FORMATS
from input_pipeline.tasks.labels import LabelList, labels_from_examples, load_labels, save_labels
from input_pipeline.tasks.reading import read_examples
from input_pipeline.tasks.records import Location, TaskDataError, TextExample, drop_unlabeled

tfds = pytest.importorskip("tensorflow_datasets")


def _write(path, text: str, bom: bool = False) -> str:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return str(path)


def _tsv(*rows) -> str:
    return "".join("\t".join(row) + "\n" for row in rows)


# --- GLUE's files as distributed: their real first lines and columns. ----------------------------

MNLI_COLUMNS = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                "sentence2")
MNLI_PREMISE = "Conceptually cream skimming has two basic dimensions - product and geography."
MNLI_ROW = ("0", "31193", "31193n", "government", ("( ( Conceptually ( cream skimming ) ) ( ( has "
            "( ( ( two ( basic dimensions ) ) - ) ( ( product and ) geography ) ) ) . ) )"),
            "( ( ( Product and ) geography ) ( ( are ( what ( make ( cream ( skimming work ) ) ) ) ) . ) )",
            "(ROOT (S (NP (JJ Conceptually) (NN cream) (NN skimming)) (VP (VBZ has)) (. .)))",
            "(ROOT (S (NP (NN Product)) (VP (VBP are)) (. .)))", MNLI_PREMISE,
            "Product and geography are what make cream skimming work. ")

GLUE_FILES = {
    # task: {file name: contents}
    "cola": {
        # train.tsv and dev.tsv have no header: source, label, original mark, sentence.
        "train.tsv": _tsv(("gj04", "1", "", "Our friends won't buy this analysis, let alone the next one we propose."),
                          ("gj04", "0", "*", "They drank the pub."),
                          ("gj04", "1", "", 'The "sailors" rode the breeze clear of the rocks.')),
        "test.tsv": _tsv(("index", "sentence"), ("0", "Bill whistled past the house.")),
    },
    "sst2": {
        "train.tsv": _tsv(("sentence", "label"), ("hide new secretions from the parental units ", "0"),
                          (("that loves its characters and communicates something rather beautiful "
                           "about human nature "), "1")),
        "test.tsv": _tsv(("index", "sentence"), ("0", "uneasy mishmash of styles and genres .")),
    },
    "qqp": {
        "train.tsv": _tsv(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
                          ("133273", "213221", "213222", ("How is the life of a math student? Could "
                           "you describe your own experiences?"), ("Which level of prepration is "
                           "enough for the exam jlpt5?"), "0"),
                          ("402555", "536040", "536041", "How do I control my horny emotions?",
                           "How do you control your horniness?", "1"),
                          # Quotes are text: a field may start with one and leave it open.
                          ("3", "7", "8", '"Ain\'t" is a word?', '"Why do people say "ain\'t"?',
                           "0")),
        "test.tsv": _tsv(("id", "question1", "question2"),
                         ("0", "Why am I mentally very lonely? How can I solve it?",
                          'Find the remainder when "[math]23^{24}[/math]" is divided by 24,23?')),
    },
    "stsb": {
        "train.tsv": _tsv(("index", "genre", "filename", "year", "old_index", "source1", "source2",
                           "sentence1", "sentence2", "score"),
                          ("0", "main-captions", "MSRvid", "2012test", "0001", "none", "none",
                           "A plane is taking off.", "An air plane is taking off.", "5.000"),
                          ("1", "main-captions", "MSRvid", "2012test", "0004", "none", "none",
                           "A man is playing a large flute.", "A man is playing a flute.", "3.800")),
        "test.tsv": _tsv(("index", "genre", "filename", "year", "old_index", "source1", "source2",
                          "sentence1", "sentence2"),
                         ("0", "main-captions", "MSRvid", "2012test", "0024", "none", "none",
                          "A girl is styling her hair.", "A girl is brushing her hair.")),
    },
    "mnli": {
        "train.tsv": _tsv(MNLI_COLUMNS + ("label1", "gold_label"), MNLI_ROW + ("neutral", "neutral")),
        "dev_matched.tsv": _tsv(MNLI_COLUMNS + ("label1", "label2", "label3", "label4", "label5", "gold_label"),
                                MNLI_ROW + ("neutral", "entailment", "neutral", "neutral", "neutral", "neutral"),
                                MNLI_ROW[:9] + ("Skimming cream has no dimensions.",
                                                "contradiction", "contradiction", "contradiction",
                                                "contradiction", "contradiction", "contradiction")),
        "test_matched.tsv": _tsv(MNLI_COLUMNS, MNLI_ROW),
    },
    "qnli": {
        "train.tsv": _tsv(("index", "question", "sentence", "label"),
                          ("0", "When did the third Digimon series begin?", ("Unlike the two seasons "
                           "before it, Digimon Tamers takes a darker and more realistic approach."),
                           "not_entailment")),
    },
    "rte": {
        "train.tsv": _tsv(("index", "sentence1", "sentence2", "label"),
                          ("0", "No Weapons of Mass Destruction Found in Iraq Yet.",
                           "Weapons of Mass Destruction Found in Iraq.", "not_entailment")),
    },
    "wnli": {
        "train.tsv": _tsv(("index", "sentence1", "sentence2", "label"),
                          ("0", "I stuck a pin through a carrot. When I pulled the pin out, it had a hole.",
                           "The carrot had a hole.", "1")),
    },
}


def _tfds_reference(task: str, path: str, split: str) -> list[dict]:
    builder = tfds.builder(f"glue/{task}")
    return [example for _, example in builder._generate_examples(path, split)]


@pytest.mark.parametrize("task,name", [(t, n) for t, files in GLUE_FILES.items() for n in files])
def test_glue_tsv_equals_tfds_glue_builder(tmp_path, task, name):
    path = _write(tmp_path / name, GLUE_FILES[task][name])
    split = name.split("_")[0].removesuffix(".tsv")
    ours = read_examples(path, f"glue/{task}")
    reference = _tfds_reference(task, path, split)
    fmt = FORMATS[f"glue/{task}"]
    names = tfds.builder(f"glue/{task}").info.features["label"]
    assert len(ours) == len(reference) > 0
    for example, ref in zip(ours, reference):
        assert example.text_a == ref[fmt.tfds_fields.text_a]
        assert example.text_b == (ref[fmt.tfds_fields.text_b] if fmt.tfds_fields.text_b else None)
        if task == "stsb":
            assert (example.label is None) == (ref["label"] == -1)
            if example.label is not None:
                assert np.float32(example.label) == ref["label"]
        else:
            label = ref["label"] if isinstance(ref["label"], int) else names.str2int(ref["label"])
            assert example.label == (None if label == -1 else names.names[label])
    # Examples are located at their own line (CoLA's train file has no header line).
    first_line = 1 if (task, name) == ("cola", "train.tsv") else 2
    assert [e.location.line for e in ours] == list(range(first_line, first_line + len(ours)))


def test_mrpc_with_byte_order_mark_equals_tfds(tmp_path):
    # MRPC's source file starts with a UTF-8 byte order mark, which TFDS skips by hand.
    text = _tsv(("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
                ("1", "702876", "702977", ('Amrozi accused his brother , whom he called " the witness " , '
                 "of deliberately distorting his evidence ."), ('Referring to him as only " the witness " '
                 ", Amrozi accused his brother of deliberately distorting his evidence .")),
                ("0", "2108705", "2108831", ("Yucaipa owned Dominick 's before selling the chain to "
                 "Safeway in 1998 for $ 2.5 billion ."), ("Yucaipa bought Dominick 's in 1995 for $ 693 "
                 "million and sold it to Safeway for $ 1.8 billion in 1998 .")))
    path = _write(tmp_path / "train.tsv", text, bom=True)
    dev_ids = _write(tmp_path / "dev_ids.tsv", "")
    builder = tfds.builder("glue/mrpc")
    reference = list(builder._generate_example_mrpc_files({"dev_ids": dev_ids, "train": path}, "train"))
    ours = read_examples(path, "glue/mrpc")
    names = builder.info.features["label"].names
    assert [(e.text_a, e.text_b, e.label) for e in ours] == [
        (r["sentence1"], r["sentence2"], names[r["label"]]) for r in reference]
    assert [e.label for e in ours] == ["equivalent", "not_equivalent"]


def test_glue_label_orders_are_tfds_class_labels():
    for name, fmt in FORMATS.items():
        if name.startswith("glue/") and fmt.label_names:
            assert fmt.label_names == tuple(tfds.builder(name).info.features["label"].names), name
    assert FORMATS["glue/mnli"].label_names == ("entailment", "neutral", "contradiction")
    assert tuple(tfds.builder("conll2003").info.features["ner"].feature.names) == \
        FORMATS["conll2003"].label_names


# --- Errors name the file, line and field. --------------------------------------------------------

@pytest.mark.parametrize("text,match", [
    (_tsv(("index", "sentence1", "sentence2", "label"), ("0", "A", "B", "entailment"),
          ("1", "A", "B")), r"rte.tsv:3: 3 fields where the header has 4"),
    (_tsv(("index", "sentence1", "sentence2", "label"), ("0", "A", "  ", "entailment")),
     r"rte.tsv:2: field 'sentence2': empty text"),
    (_tsv(("index", "sentence1", "sentence2", "label"), ("0", "A", "B", "")),
     r"rte.tsv:2: field 'label': empty label"),
    (_tsv(("index", "premise", "hypothesis", "label"), ("0", "A", "B", "entailment")),
     r"rte.tsv:1: field 'sentence1': no such column; the header has \['index', 'premise'"),
])
def test_glue_errors_name_file_line_and_field(tmp_path, text, match):
    with pytest.raises(TaskDataError, match=match):
        read_examples(_write(tmp_path / "rte.tsv", text), "glue/rte")


def test_non_numeric_score_and_bad_index(tmp_path):
    text = GLUE_FILES["stsb"]["train.tsv"].replace("3.800", "high")
    with pytest.raises(TaskDataError, match=r"stsb.tsv:3: field 'score': 'high' is not a number"):
        read_examples(_write(tmp_path / "stsb.tsv", text), "glue/stsb")
    text = GLUE_FILES["sst2"]["train.tsv"].replace("\t1\n", "\t2\n")
    with pytest.raises(TaskDataError, match=r"sst2.tsv:3: field 'label': label index 2 is outside "
                                            r"the 2 labels of glue/sst2: \['negative', 'positive'\]"):
        read_examples(_write(tmp_path / "sst2.tsv", text), "glue/sst2")


def test_unknown_label_at_evaluation_names_file_line_field_and_known_labels(tmp_path):
    train = read_examples(_write(tmp_path / "train.jsonl", '{"text": "a", "label": "spam"}\n'
                                                          '{"text": "b", "label": "ham"}\n'), "jsonl")
    labels = labels_from_examples(train)
    dev = read_examples(_write(tmp_path / "dev.jsonl", '{"text": "a", "label": "ham"}\n'
                                                      '{"text": "c", "label": "eggs"}\n'), "jsonl")
    with pytest.raises(TaskDataError, match=r"dev.jsonl:2: field 'label': unknown label 'eggs'; "
                                            r"the model knows \['ham', 'spam'\]"):
        [labels.id(e.label, e.location) for e in dev]


# --- Generic TSV, CSV, JSON Lines and KLUE's JSON. -------------------------------------------------

def test_csv_quoting_and_multiline_fields(tmp_path):
    path = _write(tmp_path / "data.csv", 'text,label\n"Hello, world",pos\n"two\nlines ""quoted""",neg\nplain,pos\n')
    examples = read_examples(path, "csv")
    assert [(e.text_a, e.label, e.location.line) for e in examples] == [
        ("Hello, world", "pos", 2), ('two\nlines "quoted"', "neg", 3), ("plain", "pos", 5)]


def test_tsv_with_header_and_mapped_fields(tmp_path):
    path = _write(tmp_path / "pairs.tsv", _tsv(("id", "query", "passage", "relevant"),
                                               ("1", "q one", "p one", "yes")))
    [example] = read_examples(path, "tsv", Fields("query", "passage", "relevant"))
    assert (example.text_a, example.text_b, example.label) == ("q one", "p one", "yes")
    with pytest.raises(TaskDataError, match="cannot tell which of the fields .* hold the text"):
        read_examples(path, "tsv")


def test_jsonl_hugging_face_export(tmp_path):
    # `datasets` exports a ClassLabel as its index; a test split has -1.
    lines = [{"sentence1": "A man plays.", "sentence2": "A person plays.", "label": 0, "idx": 0},
             {"sentence1": "A dog runs.", "sentence2": "A cat sleeps.", "label": 2, "idx": 1},
             {"sentence1": "Rain.", "sentence2": "Sun.", "label": -1, "idx": 2}]
    path = _write(tmp_path / "mnli.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    examples = read_examples(path, "jsonl", label_names=FORMATS["glue/mnli"].label_names)
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [
        ("A man plays.", "A person plays.", "entailment"), ("A dog runs.", "A cat sleeps.", "contradiction"),
        ("Rain.", "Sun.", None)]
    kept, dropped = drop_unlabeled(examples)
    assert (len(kept), dropped) == (2, 1)
    # Without names, the indices are the labels, ordered numerically.
    unnamed = read_examples(path, "jsonl")
    assert labels_from_examples(unnamed).names == ("0", "2")
    with pytest.raises(TaskDataError, match=r"mnli.jsonl:2: field 'label': label index 2 is outside"):
        read_examples(path, "jsonl", label_names=("no", "yes"))


def test_jsonl_errors(tmp_path):
    with pytest.raises(TaskDataError, match=r"bad.jsonl:2: not JSON"):
        read_examples(_write(tmp_path / "bad.jsonl", '{"text": "a", "label": 1}\n{"text": \n'), "jsonl")
    with pytest.raises(TaskDataError, match=r"miss.jsonl:2: field 'label': missing \(the record has \['text'\]\)|"
                                            r"miss.jsonl:2: field 'text': missing"):
        read_examples(_write(tmp_path / "miss.jsonl", '{"text": "a", "label": "x"}\n{"txt": "b"}\n'), "jsonl")
    with pytest.raises(TaskDataError, match=r"reg.jsonl:1: field 'label': 'n/a' is not a number"):
        read_examples(_write(tmp_path / "reg.jsonl", '{"text": "a", "label": "n/a"}\n'), "jsonl",
                      task_type="regression")


KLUE_YNAT = [
    {"guid": "ynat-v1_train_00000", "title": "유튜브 내달 2일까지 크리에이터 지원 공간 운영",
     "label": "생활문화", "url": "https://news.naver.com/...", "date": "2016.06.30. 오전 10:36"},
    {"guid": "ynat-v1_train_00001", "title": "어버이날 맑다가 흐려져…남부지방 옅은 황사",
     "label": "생활문화", "url": "https://news.naver.com/...", "date": "2016.05.08. 오전 5:25"},
]
KLUE_NLI = [{"guid": "klue-nli-v1_train_00000", "genre": "NSMC",
             "premise": "힛걸 진심 최고다 그 어떤 히어로보다 멋지다", "hypothesis": "힛걸 진심 최고로 멋지다.",
             "gold_label": "entailment", "author": "entailment", "label2": "entailment"}]
KLUE_STS = [{"guid": "klue-sts-v1_train_00000", "source": "airbnb-rtt",
             "sentence1": "숙소 위치는 찾기 쉽고 일반적인 한국의 반지하 숙소입니다.",
             "sentence2": "숙박시설의 위치는 쉽게 찾을 수 있고 한국의 대표적인 반지하 숙박시설입니다.",
             "labels": {"label": 3.7, "real-label": 3.714285714285714, "binary-label": 1}}]


def test_klue_json_files(tmp_path):
    # KLUE's files are indented JSON arrays; each example is located at the line it starts on.
    ynat = read_examples(_write(tmp_path / "ynat.json", json.dumps(KLUE_YNAT, ensure_ascii=False, indent=4)),
                         "klue/ynat")
    assert [(e.text_a, e.label, e.location.line) for e in ynat] == [
        (KLUE_YNAT[0]["title"], "생활문화", 2), (KLUE_YNAT[1]["title"], "생활문화", 9)]
    [nli] = read_examples(_write(tmp_path / "nli.json", json.dumps(KLUE_NLI, ensure_ascii=False)), "klue/nli")
    assert (nli.text_a, nli.text_b, nli.label) == (KLUE_NLI[0]["premise"], KLUE_NLI[0]["hypothesis"], "entailment")
    [sts] = read_examples(_write(tmp_path / "sts.json", json.dumps(KLUE_STS, ensure_ascii=False)), "klue/sts")
    assert sts.label == KLUE_STS[0]["labels"]["real-label"]
    broken = json.dumps(KLUE_YNAT, ensure_ascii=False, indent=4).replace('"label": "생활문화",', '"label": 생활문화,', 1)
    with pytest.raises(TaskDataError, match=r"ynat.json:5: not JSON"):
        read_examples(_write(tmp_path / "ynat.json", broken), "klue/ynat")


# --- CoNLL and KLUE-NER. ---------------------------------------------------------------------------

CONLL = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n"
         "call NN I-NP O\n. . O O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n"
         "-DOCSTART- -X- -X- O\n\nBRUSSELS NNP B-NP B-LOC\n1996-08-22 CD I-NP O\n")


def test_conll_equals_tfds_conll2003_builder(tmp_path):
    path = _write(tmp_path / "train.txt", CONLL)
    reference = [ex for _, ex in tfds.builder("conll2003")._generate_examples(path)]
    ours = read_examples(path, "conll2003")
    assert [(list(s.words), list(s.tags)) for s in ours] == [(r["tokens"], r["ner"]) for r in reference]
    assert [s.location.line for s in ours] == [3, 9, 14]
    # Another column as the tag (the chunk tags), or none.
    chunks = read_examples(path, "conll", tag_column=2)
    assert [list(s.tags) for s in chunks] == [r["chunks"] for r in reference]
    assert all(s.tags is None for s in read_examples(path, "conll", tag_column=None))


def test_conll_ragged_line(tmp_path):
    path = _write(tmp_path / "train.txt", CONLL.replace("Blackburn NNP I-NP I-PER", "Blackburn I-PER"))
    with pytest.raises(TaskDataError, match=r"train.txt:10: 2 columns where the file's first word line has 4"):
        read_examples(path, "conll2003")
    path = _write(tmp_path / "one.txt", "EU\nrejects\n")
    with pytest.raises(TaskDataError, match=r"one.txt:1: field 'tag column -1'|one.txt:1: field 'tag"):
        read_examples(path, "conll", tag_column=1)


# The layout of klue-ner-v1.1_train.tsv: five "##" header lines, then per sentence its id and the
# sentence with inline <entity:TAG> marks, one "<char>\t<tag>" line per character (spaces
# included), and a blank line.
KLUE_NER_HEADER = ("## 토큰, 레이블 구분자 : \\t\n## 토큰 구분자 : \\n\n## 문장 구분자 : \\n\\n\n"
                   "## 주석 : ##\n## 컬럼명 : CHAR\tNE_TAG\n")
KLUE_NER_SENTENCES = [("특히 <영동고속도로:LC> <강릉:LC> 방향 <문막휴게소:LC>에서 <만종분기점:LC>까지 <5km:QT> 구간에는 "
                      "승용차 전용 임시 갓길차로제를 운영하기로 했다."),
                      "<김철수:PS>는 <서울:LC>에서 <어제:DT> 만났다."]


def _klue_ner_file(sentences) -> tuple[str, list[tuple[str, list[str]]]]:
    """The file for sentences with inline marks, and each sentence's characters and IOB2 tags."""
    text, expected = KLUE_NER_HEADER, []
    for number, marked in enumerate(sentences):
        chars, tags = [], []
        for plain, entity, tag in re.findall(r"([^<]+)|<([^:>]+):([A-Z]+)>", marked):
            piece = plain or entity
            chars.extend(piece)
            tags.extend(["O"] * len(piece) if plain else [f"B-{tag}"] + [f"I-{tag}"] * (len(piece) - 1))
        text += f"## klue-ner-v1_train_{number:05d}_wikitree\t{marked}\n"
        text += "".join(f"{c}\t{t}\n" for c, t in zip(chars, tags)) + "\n"
        expected.append(("".join(chars), tags))
    return text, expected


def test_klue_ner_tsv(tmp_path):
    text, expected = _klue_ner_file(KLUE_NER_SENTENCES)
    sentences = read_examples(_write(tmp_path / "klue-ner-v1.1_train.tsv", text), "klue/ner")
    assert [("".join(s.words), list(s.tags)) for s in sentences] == expected
    assert sentences[0].words[:4] == ("특", "히", " ", "영")  # Spaces are characters too.
    assert [s.location.line for s in sentences] == [6, 6 + len(expected[0][1]) + 2]
    bad = text.replace("울\tI-LC\n", "울I-LC\n")
    with pytest.raises(TaskDataError, match=r"klue-ner-v1.1_train.tsv:\d+: expected one character, a tab and its tag"):
        read_examples(_write(tmp_path / "klue-ner-v1.1_train.tsv", bad), "klue/ner")


# --- Label lists. ----------------------------------------------------------------------------------

def test_label_lists(tmp_path):
    loc = Location("x", 1)
    examples = [TextExample("t", None, label, loc) for label in ("b", "a", "c", "a")]
    assert labels_from_examples(examples).names == ("a", "b", "c")  # Sorted, as run_glue.py.
    numbers = [TextExample("t", None, label, loc) for label in ("10", "2", "0")]
    assert labels_from_examples(numbers).names == ("0", "2", "10")
    assert labels_from_examples(examples, known=("c", "b", "a")).names == ("c", "b", "a")
    with pytest.raises(TaskDataError, match=r"x:1: field 'label': unknown label 'a'"):
        labels_from_examples(examples, known=("b", "c"))
    labels = LabelList(("entailment", "neutral", "contradiction"))
    save_labels(labels, tmp_path / "labels.json")
    assert load_labels(tmp_path / "labels.json") == labels
    assert [p.name for p in tmp_path.iterdir()] == ["labels.json"]  # No temporary file left.


# --- TFDS, mocked offline. -------------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "tfds:glue/cola:train", "tfds:glue/mnli:validation_mismatched", "tfds:glue/stsb:validation",
    "tfds:glue/qqp:train", "tfds:snli:train", "tfds:multi_nli:validation_matched"])
def test_tfds_readers_on_mock_data(source):
    # The mock draws random examples from each builder's real features: this checks the field
    # names and label features we read against the builders themselves.
    with tfds.testing.mock_data(num_examples=5):
        examples = read_examples(source)
    assert len(examples) == 5
    name = source.split(":")[1]
    for index, example in enumerate(examples):
        assert example.location == Location(source, index=index)
        if name == "glue/stsb":
            assert isinstance(example.label, float)
        else:
            assert example.label is None or example.label in FORMATS[name].label_names
            assert example.text_a and (example.text_b is not None) == (name != "glue/cola")


def test_tfds_labels_by_class_label_names():
    import tensorflow as tf

    examples = {"premise": ["A man plays.", "A dog runs.", "Rain."], "hypothesis": ["A person plays.", "A cat.", "Sun."],
                "label": [0, 2, -1]}

    def as_dataset(self, split, **kwargs):
        return tf.data.Dataset.from_tensor_slices(examples)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        snli = read_examples("tfds:snli:train")
    assert [(e.text_a, e.text_b, e.label) for e in snli] == [
        ("A man plays.", "A person plays.", "entailment"), ("A dog runs.", "A cat.", "contradiction"),
        ("Rain.", "Sun.", None)]
    # CoNLL-2003's tags are a Sequence of ClassLabel (random mock sequences would not keep the
    # words and tags equally long, so these are given).
    conll = {"tokens": [["EU", "rejects", "German", "call"]], "pos": [[21, 38, 16, 21]],
             "chunks": [[11, 21, 11, 12]], "ner": [[3, 0, 7, 0]]}

    def conll_dataset(self, split, **kwargs):
        return tf.data.Dataset.from_tensor_slices({k: tf.ragged.constant(v) for k, v in conll.items()})

    with tfds.testing.mock_data(as_dataset_fn=conll_dataset):
        [sentence] = read_examples("tfds:conll2003:test")
    assert sentence.words == ("EU", "rejects", "German", "call")
    assert sentence.tags == ("B-ORG", "O", "B-MISC", "O")
    with pytest.raises(ValueError, match="not a TFDS task dataset this reader knows"):
        read_examples("tfds:wikipedia/20230601.en:train")


def test_jsonl_tagging_hugging_face_export(tmp_path):
    # `datasets` exports conll2003 and klue/ner with the tags as ClassLabel indices.
    lines = [{"id": "0", "tokens": ["EU", "rejects", "German", "call"], "ner_tags": [3, 0, 7, 0]},
             {"id": "1", "tokens": ["Peter", "Blackburn"], "ner_tags": [1, 2]}]
    path = _write(tmp_path / "conll.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    sentences = read_examples(path, "jsonl", task_type="tagging",
                              label_names=FORMATS["conll2003"].label_names)
    assert [(s.words, s.tags) for s in sentences] == [
        (("EU", "rejects", "German", "call"), ("B-ORG", "O", "B-MISC", "O")),
        (("Peter", "Blackburn"), ("B-PER", "I-PER"))]
    lines[1]["ner_tags"] = [1]
    path = _write(tmp_path / "conll.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(TaskDataError, match=r"conll.jsonl:2: field 'ner_tags': 2 words but 1 tags"):
        read_examples(path, "jsonl", task_type="tagging")
