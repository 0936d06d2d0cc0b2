"""The canvas agent: prompt -> whiteboard objects, deterministic and offline."""
from __future__ import annotations

import copy

import marshmallow
import pytest

from backend.agents import canvas
from backend.agents.base import PermanentAgentError
from backend.agents.canvas import CanvasInput, build_canvas_agent

SHAPE_TYPES = {"rect", "ellipse", "triangle", "star", "line", "arrow", "text"}
OBJECT_KEYS = {"id", "type", "x", "y", "width", "height", "fill", "stroke", "text"}
# Rounding to 0.1 px can move a shared edge by this much.
EDGE_TOLERANCE_PX = 0.2


class RecordingReporter:
    """Remembers what the agent reported, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def progress(self, percent: float, stage: str, message: str = "") -> None:
        self.events.append(("progress", percent, stage, message))

    def checkpoint(self) -> None:
        self.events.append(("checkpoint",))


class Cancelled(Exception):
    pass


class CancellingReporter(RecordingReporter):
    def checkpoint(self) -> None:
        super().checkpoint()
        raise Cancelled()


def draw(prompt: str, width: int = 1200, height: int = 800, reporter=None) -> dict:
    payload = CanvasInput().load({"prompt": prompt, "width": width, "height": height})
    return build_canvas_agent().run(payload, reporter or RecordingReporter())


def failure(prompt: str, width: int = 1200, height: int = 800) -> PermanentAgentError:
    with pytest.raises(PermanentAgentError) as caught:
        draw(prompt, width, height)
    return caught.value


def of_type(result: dict, shape_type: str) -> list[dict]:
    return [obj for obj in result["objects"] if obj["type"] == shape_type]


def right(obj: dict) -> float:
    return obj["x"] + obj["width"]


def bottom(obj: dict) -> float:
    return obj["y"] + obj["height"]


def assert_drawable(result: dict, width: int, height: int) -> None:
    """Well-formed objects, all inside the canvas, no two solid shapes sharing any area."""
    objects = result["objects"]
    assert objects
    assert [obj["id"] for obj in objects] == [f"obj_{n}" for n in range(1, len(objects) + 1)]
    for obj in objects:
        assert set(obj) == OBJECT_KEYS
        assert obj["type"] in SHAPE_TYPES
        for key in ("x", "y", "width", "height"):
            assert isinstance(obj[key], (int, float))
            assert round(obj[key], 1) == obj[key]
        assert obj["fill"] == "none" or obj["fill"].startswith("#")
        assert obj["stroke"].startswith("#") or obj["stroke"] == "transparent"
        assert obj["text"] is None or isinstance(obj["text"], str)
        xs = (obj["x"], obj["x"] + obj["width"])
        ys = (obj["y"], obj["y"] + obj["height"])
        assert 0 <= min(xs) and max(xs) <= width, obj
        assert 0 <= min(ys) and max(ys) <= height, obj
    solid = [obj for obj in objects if obj["type"] not in ("line", "arrow")]
    for index, a in enumerate(solid):
        assert a["width"] > 0 and a["height"] > 0
        for b in solid[index + 1 :]:
            side_by_side = right(a) <= b["x"] or right(b) <= a["x"]
            one_above_other = bottom(a) <= b["y"] or bottom(b) <= a["y"]
            assert side_by_side or one_above_other, (a, b)
    assert isinstance(result["summary"], str) and result["summary"]


# --- the five example prompts ----------------------------------------------------------------


def test_three_red_circles_are_laid_out_in_a_row_without_overlap():
    result = draw("three red circles in a row")

    circles = result["objects"]
    assert [c["type"] for c in circles] == ["ellipse"] * 3
    assert all(c["width"] == c["height"] for c in circles)
    assert {c["fill"] for c in circles} == {canvas.COLOURS["red"]}
    assert len({c["y"] for c in circles}) == 1
    assert right(circles[0]) < circles[1]["x"] and right(circles[1]) < circles[2]["x"]
    assert result["summary"] == "3 red circles in a row"
    assert_drawable(result, 1200, 800)


def test_two_by_three_grid_has_two_rows_of_three_blue_squares_labelled_a_to_f():
    result = draw("a 2x3 grid of blue squares labelled A to F")

    squares = result["objects"]
    assert [s["type"] for s in squares] == ["rect"] * 6
    assert all(s["width"] == s["height"] for s in squares)
    assert {s["fill"] for s in squares} == {canvas.COLOURS["blue"]}
    assert len({s["y"] for s in squares}) == 2
    assert len({s["x"] for s in squares}) == 3
    reading_order = sorted(squares, key=lambda s: (s["y"], s["x"]))
    assert [s["text"] for s in reading_order] == ["A", "B", "C", "D", "E", "F"]
    assert result["summary"] == "A 2x3 grid of 6 blue squares labelled A to F"
    assert_drawable(result, 1200, 800)


def test_flowchart_joins_four_labelled_boxes_left_to_right_with_three_edge_to_edge_arrows():
    result = draw("flowchart: Start -> Validate -> Save -> End")

    boxes, arrows = of_type(result, "rect"), of_type(result, "arrow")
    assert len(result["objects"]) == 7
    assert [box["text"] for box in boxes] == ["Start", "Validate", "Save", "End"]
    assert [box["x"] for box in boxes] == sorted(box["x"] for box in boxes)
    assert len(arrows) == 3
    for arrow, source, target in zip(arrows, boxes, boxes[1:]):
        assert arrow["height"] == 0 and arrow["width"] > 0
        assert arrow["x"] == pytest.approx(right(source), abs=EDGE_TOLERANCE_PX)
        assert arrow["x"] + arrow["width"] == pytest.approx(target["x"], abs=EDGE_TOLERANCE_PX)
        assert source["y"] < arrow["y"] < bottom(source)
        assert arrow["text"] is None and arrow["fill"] == "none"
    assert result["summary"] == "A flowchart of 4 steps: Start → Validate → Save → End"
    assert_drawable(result, 1200, 800)


def test_big_yellow_star_is_larger_than_and_left_of_small_green_triangle():
    result = draw("a big yellow star next to a small green triangle")

    star, triangle = result["objects"]
    assert (star["type"], triangle["type"]) == ("star", "triangle")
    assert star["fill"] == canvas.COLOURS["yellow"] and triangle["fill"] == canvas.COLOURS["green"]
    assert star["width"] > 2 * triangle["width"] and star["height"] > 2 * triangle["height"]
    assert right(star) < triangle["x"]
    assert result["summary"] == "A large yellow star next to a small green triangle"
    assert_drawable(result, 1200, 800)


def test_title_text_sits_above_two_tall_column_rects():
    result = draw("a title that says Quarterly Plan above two columns")

    (title,) = of_type(result, "text")
    columns = of_type(result, "rect")
    assert title["text"] == "Quarterly Plan"
    assert len(columns) == 2
    assert all(c["height"] > c["width"] for c in columns)
    assert all(bottom(title) < c["y"] for c in columns)
    assert right(columns[0]) < columns[1]["x"]
    assert result["summary"] == 'A title "Quarterly Plan" above 2 columns'
    assert_drawable(result, 1200, 800)


# --- layout holds for many prompts and canvases ---------------------------------------------

PROMPTS = [
    "three red circles in a row",
    "a 2x3 grid of blue squares labelled A to F",
    "flowchart: Start -> Validate -> Save -> End",
    "a big yellow star next to a small green triangle",
    "a title that says Quarterly Plan above two columns",
    "five tiny dots in a column",
    "twelve triangles",
    "a huge orange oval below a box labelled 'Salt and Pepper'",
    "two lines and a dozen red dots",
    'a title that says "Hello, world". Three arrows in a column',
    "'hello' to the right of a circle",
    "twenty-five outlined purple stars in a grid",
    "three circles labelled A, B and C next to two green boxes above a caption saying Figure 1",
    "a vertical flowchart: Login -> Home -> Logout",
]
CANVASES = [(1200, 800), (200, 200), (10000, 200), (200, 10000), (640, 480)]


@pytest.mark.parametrize("width, height", CANVASES)
@pytest.mark.parametrize("prompt", PROMPTS)
def test_objects_stay_inside_the_canvas_without_overlapping(prompt, width, height):
    assert_drawable(draw(prompt, width, height), width, height)


def test_the_same_input_always_gives_the_same_drawing():
    for prompt in PROMPTS:
        assert draw(prompt) == draw(prompt)


def test_many_shapes_shrink_to_fit_a_small_canvas():
    roomy = draw("nine squares", 1200, 800)["objects"]
    cramped = draw("nine squares", 200, 200)["objects"]

    assert cramped[0]["width"] < roomy[0]["width"]
    assert_drawable({"objects": cramped, "summary": "x"}, 200, 200)


# --- parsing vocabulary ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt, shape_type, count",
    [
        ("a circle", "ellipse", 1),
        ("2 dots", "ellipse", 2),
        ("an oval", "ellipse", 1),
        ("four boxes", "rect", 4),
        ("a rectangle", "rect", 1),
        ("seven squares", "rect", 7),
        ("a couple of stars", "star", 2),
        ("triangles", "triangle", canvas.DEFAULT_PLURAL_COUNT),
        ("an arrow", "arrow", 1),
        ("50 dots", "ellipse", 50),
        ("twenty five dots", "ellipse", 25),
        ('text "hi"', "text", 1),
    ],
)
def test_shape_words_and_numbers_choose_type_and_count(prompt, shape_type, count):
    objects = draw(prompt)["objects"]

    assert [obj["type"] for obj in objects] == [shape_type] * count


def test_circles_and_squares_keep_equal_sides_while_ovals_and_boxes_do_not():
    circle, square, oval, box = draw("a circle, a square, an oval and a box")["objects"]

    assert circle["width"] == circle["height"] and square["width"] == square["height"]
    assert oval["width"] > oval["height"] and box["width"] > box["height"]


def test_colour_names_fill_shapes_and_stroke_them_a_shade_darker():
    grey, white = draw("a grey square and a white circle")["objects"]

    assert grey["fill"] == "#757575" and grey["stroke"] == "#525252"
    assert white["fill"] == "#ffffff" and white["stroke"] == "#b2b2b2"


def test_uncoloured_and_outlined_shapes_are_drawn_as_outlines():
    plain, outlined = draw("a star and an outlined red star")["objects"]

    assert (plain["fill"], plain["stroke"]) == ("none", canvas.INK)
    assert (outlined["fill"], outlined["stroke"]) == ("none", canvas.COLOURS["red"])


def test_connectors_run_horizontally_through_their_cells_in_their_colour():
    lines = draw("three blue lines in a column")["objects"]

    assert all(line["height"] == 0 and line["width"] > 0 for line in lines)
    assert {(line["fill"], line["stroke"]) for line in lines} == {("none", canvas.COLOURS["blue"])}
    assert [line["y"] for line in lines] == sorted({line["y"] for line in lines})


def test_text_objects_carry_their_words_in_the_text_colour():
    (text,) = draw('a red label that says "Salt and Pepper"')["objects"]

    assert text["type"] == "text"
    assert text["text"] == "Salt and Pepper"
    assert (text["fill"], text["stroke"]) == (canvas.COLOURS["red"], "transparent")


def test_a_title_is_drawn_in_larger_type_than_plain_text():
    title, plain = draw("a title that says Hi next to text 'Hi'")["objects"]

    assert title["height"] > plain["height"]


def test_several_text_objects_repeat_their_words():
    result = draw("three labels that say Hi")

    assert [obj["text"] for obj in result["objects"]] == ["Hi", "Hi", "Hi"]
    assert result["summary"] == '3 labels "Hi"'


@pytest.mark.parametrize(
    "prompt, labels",
    [
        ("three circles labelled A, B and C", ["A", "B", "C"]),
        ("circles labelled 1-4", ["1", "2", "3", "4"]),
        ("squares labeled from f to d", ["f", "e", "d"]),
        ("three boxes labelled X Y Z", ["X", "Y", "Z"]),
        ('two boxes labelled "Yes" and "No"', ["Yes", "No"]),
        ("three boxes named Draft", ["Draft", "Draft", "Draft"]),
        ("three boxes labelled A and B", ["A", "B", None]),
        ("a box with the text Follow-up", ["Follow-up"]),
    ],
)
def test_labels_are_read_as_lists_ranges_or_single_words(prompt, labels):
    assert [obj["text"] for obj in draw(prompt)["objects"]] == labels


@pytest.mark.parametrize(
    "prompt, summary",
    [
        ("three boxes labelled X1, Y2, Z3", "3 boxes labelled X1, Y2 and Z3"),
        ("a box labelled A to 3", "A box labelled A to 3"),
        ("two boxes labelled Yes, and a star", "2 boxes labelled Yes next to a star"),
        ("a box labelled , a star", "A box next to a star"),
        ("a box labelled above a star", "A box above a star"),
    ],
)
def test_labels_that_are_not_ranges_or_are_missing_are_described_as_written(prompt, summary):
    assert draw(prompt)["summary"] == summary


def test_a_label_list_stops_where_a_new_group_begins():
    result = draw("boxes labelled Start and two red circles")

    boxes, circles = of_type(result, "rect"), of_type(result, "ellipse")
    assert [box["text"] for box in boxes] == ["Start"] * canvas.DEFAULT_PLURAL_COUNT
    assert [circle["text"] for circle in circles] == [None, None]
    assert {circle["fill"] for circle in circles} == {canvas.COLOURS["red"]}


def test_boxes_widen_to_fit_long_labels_and_squares_stay_square():
    short_box, long_box, long_square = draw(
        "a box labelled Go, a box labelled 'Quarterly revenue review' and a square labelled "
        "'Quarterly revenue review'"
    )["objects"]

    assert long_box["width"] > short_box["width"]
    assert long_box["height"] == short_box["height"]
    assert long_square["width"] == long_square["height"] > short_box["height"]


# --- arrangements and relations ----------------------------------------------------------------


def test_more_than_five_objects_without_an_arrangement_form_a_near_square_grid():
    result = draw("ten stars")

    assert len({obj["y"] for obj in result["objects"]}) == 3
    assert len({obj["x"] for obj in result["objects"]}) == 4
    assert result["summary"] == "A 3x4 grid of 10 stars"


def test_a_grid_without_dimensions_is_near_square():
    result = draw("a grid of four dots")

    assert len({obj["y"] for obj in result["objects"]}) == 2
    assert result["summary"] == "A 2x2 grid of 4 dots"


def test_a_grid_grows_rows_when_given_more_objects_than_cells():
    result = draw("eight squares in a 2x3 grid")

    assert len({obj["y"] for obj in result["objects"]}) == 3
    assert result["summary"] == "A 3x3 grid of 8 squares"


def test_a_column_stacks_objects_vertically():
    result = draw("a column of four small circles")

    assert len({obj["x"] for obj in result["objects"]}) == 1
    assert result["summary"] == "4 small circles in a column"


@pytest.mark.parametrize(
    "prompt, order",
    [
        ("a star to the right of a circle", ["ellipse", "star"]),
        ("a star to the left of a circle", ["star", "ellipse"]),
        ("a star beside a circle", ["star", "ellipse"]),
    ],
)
def test_left_and_right_relations_order_groups_horizontally(prompt, order):
    objects = sorted(draw(prompt)["objects"], key=lambda obj: obj["x"])

    assert [obj["type"] for obj in objects] == order
    assert right(objects[0]) < objects[1]["x"]


@pytest.mark.parametrize(
    "prompt, order",
    [
        ("a star below a circle", ["ellipse", "star"]),
        ("a star under a circle under a square", ["rect", "ellipse", "star"]),
        ("a star on top of a circle", ["star", "ellipse"]),
        ("a star. a circle", ["star", "ellipse"]),
    ],
)
def test_above_and_below_relations_stack_groups_in_bands(prompt, order):
    objects = sorted(draw(prompt)["objects"], key=lambda obj: obj["y"])

    assert [obj["type"] for obj in objects] == order
    assert all(bottom(upper) < lower["y"] for upper, lower in zip(objects, objects[1:]))


def test_groups_next_to_each_other_share_a_band_under_a_shared_title():
    result = draw("a heading that says Plan above a circle next to a square")

    heading, circle, square = result["objects"]
    assert bottom(heading) < circle["y"] and bottom(heading) < square["y"]
    assert right(circle) < square["x"]
    assert result["summary"] == 'A heading "Plan" above a circle next to a square'


def test_filler_words_around_a_shape_are_ignored():
    assert draw("please draw me a circle, thanks")["summary"] == "A circle"


# --- flowcharts --------------------------------------------------------------------------------


def test_flowchart_drawn_top_to_bottom_when_asked_has_vertical_arrows_between_boxes():
    result = draw("flowchart top to bottom: A -> B -> C")

    boxes, arrows = of_type(result, "rect"), of_type(result, "arrow")
    assert [box["y"] for box in boxes] == sorted(box["y"] for box in boxes)
    for arrow, source, target in zip(arrows, boxes, boxes[1:]):
        assert arrow["width"] == 0 and arrow["height"] > 0
        assert arrow["y"] == pytest.approx(bottom(source), abs=EDGE_TOLERANCE_PX)
        assert arrow["y"] + arrow["height"] == pytest.approx(target["y"], abs=EDGE_TOLERANCE_PX)


def test_flowchart_follows_the_canvas_shape_when_no_direction_is_given():
    portrait = draw("Plan -> Build -> Ship", 400, 1200)
    landscape = draw("Plan -> Build -> Ship horizontally", 400, 1200)

    assert len({box["x"] for box in of_type(portrait, "rect")}) == 1
    assert len({box["y"] for box in of_type(landscape, "rect")}) == 1


def test_flowchart_turns_vertical_when_only_that_direction_is_readable():
    steps = " -> ".join("abcdefghij")
    result = draw(f"flowchart: {steps}", 220, 200)

    assert len({box["x"] for box in of_type(result, "rect")}) == 1
    assert_drawable(result, 220, 200)


def test_flowchart_colour_and_intro_words_are_not_steps():
    result = draw("draw a green flow chart of Idea => Build --> Ship")

    boxes = of_type(result, "rect")
    assert [box["text"] for box in boxes] == ["Idea", "Build", "Ship"]
    assert {box["fill"] for box in boxes} == {canvas.COLOURS["green"]}


def test_flowchart_without_an_intro_keeps_its_first_step_whole():
    boxes = of_type(draw("Process order → Ship it"), "rect")

    assert [box["text"] for box in boxes] == ["Process order", "Ship it"]


def test_flowchart_with_an_empty_step_is_unintelligible():
    error = failure("A -> -> B")

    assert error.code == "unintelligible_prompt"
    assert "step 2 is empty" in error.message


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["asdf qwerty", "please do my taxes", "in a row"])
def test_a_prompt_without_anything_to_draw_is_unintelligible(prompt):
    error = failure(prompt)

    assert error.code == "unintelligible_prompt"
    assert error.retryable is False
    assert "no shape, diagram or text" in error.message
    assert "three red circles in a row" in error.message


@pytest.mark.parametrize(
    "prompt, reason",
    [
        ("three purple unicorns", "no shape I can draw in 'three purple unicorns'"),
        ("a title", "the title has no words"),
        ("0 circles", "asked for 0 circles"),
        ("a 0x3 grid of squares", "a 0x3 grid has no cells"),
    ],
)
def test_prompts_asking_for_something_undrawable_say_why(prompt, reason):
    error = failure(prompt)

    assert error.code == "unintelligible_prompt"
    assert reason in error.message


@pytest.mark.parametrize(
    "prompt",
    [
        "60 circles",
        "a hundred stars",
        "thirty circles and thirty squares",
        "squares labelled 1 to 100",
        "flowchart: " + " -> ".join(f"s{n}" for n in range(26)),
    ],
)
def test_more_than_fifty_objects_does_not_fit(prompt):
    error = failure(prompt)

    assert error.code == "does_not_fit"
    assert "at most 50" in error.message


def test_shapes_that_would_be_too_small_to_see_do_not_fit():
    error = failure("fifty circles in a row", 200, 200)

    assert error.code == "does_not_fit"
    assert "50 objects would be as small as" in error.message


def test_validation_rejects_objects_that_are_too_small_outside_or_overlapping():
    def box(object_id, x, y, size=20.0):
        return {"id": object_id, "type": "rect", "x": x, "y": y, "width": size, "height": size}

    with pytest.raises(PermanentAgentError, match="1 object would be as small as 4.0 px"):
        canvas.validate_objects([box("obj_1", 10, 10, size=4)], 200, 200)
    with pytest.raises(PermanentAgentError, match="obj_1 would fall outside"):
        canvas.validate_objects([box("obj_1", 190, 10)], 200, 200)
    with pytest.raises(PermanentAgentError, match="obj_1 and obj_2 would overlap") as caught:
        canvas.validate_objects([box("obj_1", 10, 10), box("obj_2", 20, 20)], 200, 200)
    assert caught.value.code == "does_not_fit"
    canvas.validate_objects([box("obj_1", 10, 10), box("obj_2", 30, 10)], 200, 200)


# --- stages, progress and cancellation ---------------------------------------------------------


def test_reporter_sees_parse_plan_layout_validate_in_order_with_rising_percent():
    reporter = RecordingReporter()
    draw("three red circles in a row", reporter=reporter)

    progress = [event for event in reporter.events if event[0] == "progress"]
    stages = [stage for _, _, stage, _ in progress]
    assert list(dict.fromkeys(stages)) == ["parse", "plan", "layout", "validate"]
    assert stages == ["parse", "parse", "plan", "plan", "layout", "layout", "validate", "validate"]
    percents = [percent for _, percent, _, _ in progress]
    assert percents == sorted(percents) and len(set(percents)) == len(percents)
    assert 0 < percents[0] and percents[-1] < 100
    assert all(message for *_, message in progress)
    assert ("progress", 25, "parse", "Parsed 3 objects in 1 group") in reporter.events
    assert reporter.events.count(("checkpoint",)) == 3


def test_checkpoints_fall_between_stages():
    reporter = RecordingReporter()
    draw("flowchart: A -> B", reporter=reporter)

    kinds = [event[2] if event[0] == "progress" else "checkpoint" for event in reporter.events]
    assert kinds == [
        "parse", "parse", "checkpoint",
        "plan", "plan", "checkpoint",
        "layout", "layout", "checkpoint",
        "validate", "validate",
    ]


def test_a_cancelling_checkpoint_stops_the_run_before_the_next_stage():
    reporter = CancellingReporter()

    with pytest.raises(Cancelled):
        draw("three red circles in a row", reporter=reporter)
    stages = {event[2] for event in reporter.events if event[0] == "progress"}
    assert stages == {"parse"}


def test_each_stage_pauses_for_the_configured_delay(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(canvas.time, "sleep", pauses.append)
    payload = CanvasInput().load({"prompt": "a star"})

    build_canvas_agent(stage_delay_s=0.25).run(payload, RecordingReporter())

    assert pauses == [0.25] * 4


def test_run_does_not_modify_its_input():
    payload = CanvasInput().load({"prompt": "a star"})
    before = copy.deepcopy(payload)

    build_canvas_agent().run(payload, RecordingReporter())

    assert payload == before


# --- the agent and its input schema ------------------------------------------------------------


def test_agent_is_named_canvas_with_its_schema_and_a_thirty_second_limit():
    agent = build_canvas_agent()

    assert agent.name == "canvas"
    assert agent.input_schema is CanvasInput
    assert agent.time_limit_s == 30.0
    assert agent.description


def test_input_defaults_the_canvas_size_and_trims_the_prompt():
    loaded = CanvasInput().load({"prompt": "  a star  "})

    assert loaded == {"prompt": "a star", "width": 1200, "height": 800}


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": "a star", "colour": "red"}, "colour"),
        ({"prompt": "a star", "width": 199}, "width"),
        ({"prompt": "a star", "width": 10001}, "width"),
        ({"prompt": "a star", "width": 640.5}, "width"),
        ({"prompt": "a star", "width": "640"}, "width"),
        ({"prompt": "a star", "height": True}, "height"),
    ],
)
def test_input_rejects_bad_prompts_sizes_and_unknown_fields(payload, field):
    with pytest.raises(marshmallow.ValidationError) as caught:
        CanvasInput().load(payload)

    assert field in caught.value.messages


def test_input_accepts_the_longest_prompt_and_the_extreme_sizes():
    loaded = CanvasInput().load({"prompt": "x" * 2000, "width": 200, "height": 10000})

    assert (len(loaded["prompt"]), loaded["width"], loaded["height"]) == (2000, 200, 10000)
