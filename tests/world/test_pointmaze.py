"""PointMaze from any maze map (plugins/world/pointmaze.py) with real MuJoCo and
gymnasium-robotics: the map-to-metres frame, the env's success test, wall contacts, tracking."""

import numpy as np
import pytest

import plugins.world  # noqa: F401  (sets a headless MUJOCO_GL before mujoco is imported)

pytest.importorskip("mujoco", reason="PointMaze needs the mujoco extra: pip install 'sage-irp[mujoco]'")
pytest.importorskip("gymnasium_robotics", reason="PointMaze needs the mujoco extra: pip install 'sage-irp[mujoco]'")

from plugins.world.drive import track_path  # noqa: E402
from plugins.world.pointmaze import SUCCESS_RADIUS, PointMaze, carrot, check_maze_map, reached  # noqa: E402

import mujoco  # noqa: E402

#: 5 rows x 7 columns: an L-shaped corridor from (1, 1) along row 1 to (1, 5), down to (3, 5).
L_MAZE = [
    [1, 1, 1, 1, 1, 1, 1],
    [1, 0, 0, 0, 0, 0, 1],
    [1, 1, 1, 1, 1, 0, 1],
    [1, 1, 1, 1, 1, 0, 1],
    [1, 1, 1, 1, 1, 1, 1],
]
L_PATH = [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 5), (3, 5)]


@pytest.fixture(scope="module")
def maze():
    return PointMaze.build(L_MAZE)


def test_cells_map_to_the_envs_frame_centred_with_row_zero_on_top(maze):
    # gymnasium-robotics Maze.cell_rowcol_to_xy: x = col + 0.5 - 7 / 2, y = 5 / 2 - (row + 0.5)
    assert maze.cell_xy([(1, 1), (3, 5), (1, 3)]).tolist() == [[-2.0, 1.0], [2.0, -1.0], [0.0, 1.0]]
    # ... and the env's wall blocks stand exactly there: block_2_3 (a wall) at (0, 0)
    assert maze.model.geom("block_2_3").pos[:2].tolist() == [0.0, 0.0]
    assert len(maze.walls) == sum(map(sum, L_MAZE)) and maze.model.geom(maze.ball).name == "particle_geom"
    with pytest.raises(ValueError, match=r"cell \(2, 3\) is not an open cell of the 5 x 7 maze"):
        maze.cell_xy([(2, 3)])


def test_bad_maze_maps_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="walled all round"):
        check_maze_map([[1, 1, 1], [0, 0, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="0 \\(open\\) or 1 \\(wall\\)"):
        check_maze_map([[1, 1, 1], [1, 2, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="rectangular"):
        check_maze_map([[1, 1, 1], [1, 0], [1, 1, 1]])


def test_success_is_the_envs_own_radius(maze):
    assert SUCCESS_RADIUS == 0.45
    assert reached([0.0, 0.0], [0.45, 0.0]) and not reached([0.0, 0.0], [0.45, 0.01])
    # the env agrees: its compute_terminated on the same points
    assert maze.env.compute_terminated(np.array([0.0, 0.0]), np.array([0.45, 0.0]), {})
    assert not maze.env.compute_terminated(np.array([0.0, 0.0]), np.array([0.45, 0.01]), {})


def test_wall_contacts_count_the_ball_against_blocks_only(maze):
    data = maze.data
    maze.env.reset(seed=0, options={"reset_cell": np.array([1, 1]), "goal_cell": np.array([3, 5])})
    mujoco.mj_forward(maze.model, data)
    assert maze.wall_contacts() == 0 and data.ncon >= 0  # the floor touches, the walls do not
    data.qpos[:2] = [-2.0, 1.0 + 0.5 - 0.1 + 0.001]  # ball (r 0.1) pushed 1 mm into the wall above (1, 1)
    mujoco.mj_forward(maze.model, data)
    assert maze.wall_contacts() == 1


def test_the_ball_tracks_an_l_shaped_path_to_the_goal_without_touching_a_wall(maze):
    run = track_path(maze, L_PATH, seed=0, max_steps=400)
    assert run.success and reached(run.positions[-1], run.goal)
    assert run.time_to_goal == pytest.approx(run.steps * 0.01) and run.time_to_goal < 3.0
    assert run.wall_contacts == 0
    assert len(run.physics) == len(run.positions) == run.steps + 1
    assert len(run.planning_ms) == (run.steps + 1) // 2 and run.control_dt == pytest.approx(0.02)
    # the env's goal and start carry its position noise (+-0.25 m) around the path's end cells
    assert np.abs(run.goal - maze.cell_xy([L_PATH[-1]])[0]).max() <= 0.25
    assert np.abs(run.start - maze.cell_xy([L_PATH[0]])[0]).max() <= 0.25
    # a run is reproducible from its seed
    again = track_path(maze, L_PATH, seed=0, max_steps=400)
    assert again.steps == run.steps and np.array_equal(again.positions, run.positions)


def test_a_path_that_jumps_or_is_too_short_is_refused(maze):
    with pytest.raises(ValueError, match="neighbours"):
        track_path(maze, [(1, 1), (1, 3)])
    with pytest.raises(ValueError, match="at least 2 cells"):
        track_path(maze, [(1, 1)])


def test_the_carrot_runs_ahead_along_the_path_and_stops_at_its_end():
    line = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    point, segment = carrot(line, 0, np.array([0.5, 0.1]), 0.8)
    assert segment == 0 and np.allclose(point, [1.0, 0.3])
    point, segment = carrot(line, 0, np.array([1.0, 0.2]), 0.5)
    assert segment == 1 and np.allclose(point, [1.0, 0.7])
    point, _ = carrot(line, 1, np.array([1.0, 0.9]), 0.8)
    assert np.allclose(point, [1.0, 1.0])
