"""The pure pieces: options, argv, child environment, reading of globus-url-copy's errors."""

from __future__ import annotations

import pytest
from balsam_gridftp.command import build_argv, child_env, classify, condense
from balsam_gridftp.options import GridFTPOptions

# stderr of globus-url-copy 10.12 against globus-gridftp-server, recorded on the CI servers.
MISSING_FILE = """error: globus_ftp_client: the server responded with an error
500 500-Command failed. : globus_l_gfs_file_open failed.
500-globus_xio: Unable to open file /data/nonexist
500-globus_xio: System error in open: No such file or directory
500-globus_xio: A system call failed: No such file or directory
500 End.
"""
MISSING_DIR = """error: Unable to list url ftp://127.0.0.1:2811/data/nonexistdir/:
globus_ftp_client: the server responded with an error
550 550-GlobusError: v=1 c=PATH_NOT_FOUND
550-GridFTP-Errno: 2
550-GridFTP-Reason: System error in stat
550-GridFTP-Error-String: No such file or directory
550 End.
"""
SERVER_DOWN = """error: globus_xio: Unable to connect to 127.0.0.1:1
globus_xio: System error in connect: Connection refused
globus_xio: A system call failed: Connection refused
"""


def test_argv_carries_streams_recursion_create_dirs_and_checksum() -> None:
    options = GridFTPOptions(parallel_streams=8, verify_checksum=True, checksum_alg="ADLER32",
                             stall_timeout=30, tcp_buffer_size=4194304, subject="/O=X/CN=host")
    argv = build_argv(options, "gsiftp://h/a/", "file:///w/a/", recursive=True, create_dirs=True)
    assert argv[0] == "globus-url-copy"
    assert argv[-2:] == ["gsiftp://h/a/", "file:///w/a/"]
    joined = " ".join(argv)
    for expected in ("-p 8", "-r", "-cd", "-verify-checksum", "-checksum-alg ADLER32", "-st 30",
                     "-tcp-bs 4194304", "-fast"):
        assert expected in joined
    assert argv[argv.index("-s") + 1] == "/O=X/CN=host"  # one argv element, spaces and all


def test_argv_of_a_plain_file_has_no_recursion_and_single_stream_no_p() -> None:
    argv = build_argv(GridFTPOptions(parallel_streams=1, fast=False), "ftp://h/a", "file:///w/a",
                      recursive=False, create_dirs=False)
    for absent in ("-r", "-cd", "-p", "-verify-checksum", "-fast"):
        assert absent not in argv


def test_site_credentials_replace_inherited_ones() -> None:
    options = GridFTPOptions(x509_user_proxy="/site/proxy", x509_cert_dir="/site/certs",
                             env={"GLOBUS_TCP_PORT_RANGE": "50000,51000"})
    env = child_env(options, {"X509_USER_PROXY": "/agent/proxy", "PATH": "/bin"})
    assert env["X509_USER_PROXY"] == "/site/proxy"
    assert env["X509_CERT_DIR"] == "/site/certs"
    assert env["GLOBUS_TCP_PORT_RANGE"] == "50000,51000"
    assert env["PATH"] == "/bin"
    assert "X509_USER_CERT" not in env


def test_options_read_from_the_site_and_every_problem_named() -> None:
    options = GridFTPOptions.from_site_options({"gridftp": {"parallel_streams": 2, "retries": 0,
                                                            "extra_args": ["-nodcau"]}})
    assert (options.parallel_streams, options.retries, options.extra_args) == (2, 0, ("-nodcau",))
    assert GridFTPOptions.from_site_options({}) == GridFTPOptions()
    with pytest.raises(ValueError) as info:
        GridFTPOptions.from_site_options({"gridftp": {"parallel_stream": 2, "retries": "3",
                                                      "verify_checksum": 1}})
    message = str(info.value)
    assert "parallel_stream'" in message and "'retries' must be an integer" in message
    assert "'verify_checksum' must be true or false" in message
    with pytest.raises(ValueError, match="parallel_streams"):
        GridFTPOptions.from_site_options({"gridftp": {"parallel_streams": 0}})


def test_backoff_doubles_up_to_its_cap() -> None:
    options = GridFTPOptions(backoff_seconds=1.0, backoff_max=5.0)
    assert [options.backoff(n) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize("stderr", [MISSING_FILE, MISSING_DIR])
def test_a_missing_source_is_permanent_and_not_found(stderr: str) -> None:
    failure = classify(1, stderr)
    assert failure.not_found and not failure.transient
    assert "No such file or directory" in failure.reason


def test_a_server_that_is_down_is_transient_with_its_reason() -> None:
    failure = classify(1, SERVER_DOWN)
    assert failure.transient and not failure.not_found
    assert "Unable to connect to 127.0.0.1:1" in failure.reason
    assert "Connection refused" in failure.reason


def test_permission_and_credential_errors_are_not_retried() -> None:
    assert not classify(1, "error: globus_gsi_gssapi: Error with GSI credential").transient
    assert not classify(1, "500-System error in open: Permission denied").transient
    assert classify(-9, "").transient


def test_condense_drops_noise_and_repeats_and_is_short() -> None:
    text = condense(SERVER_DOWN)
    assert text.count("Connection refused") == 2  # two distinct lines say it
    assert "\n" not in text
    assert len(condense("x" * 1000, limit=50)) == 50
