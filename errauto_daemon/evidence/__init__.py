"""Evidence about a patch beyond "the checks exited 0": per-test results
against the base's, whether the tests were weakened, whether the changed
lines ran. Pure readers and comparisons; the validation gathers the inputs."""
