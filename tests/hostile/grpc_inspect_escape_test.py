"""shardlm-inspect on a hostile GGUF: a tensor name, a metadata key and a
metadata value carrying terminal escape sequences (ESC [2J clears the
screen, CSI as a C1 control, a bare CR) must come out escaped: no raw ESC,
CSI or CR byte in its output, text or --json. (Not a gRPC test; it shares
this suite's conventions.) Bounded: one small file, < 5 s."""
import os
import struct
import subprocess
import tempfile

import grpc_hostile as h

HOSTILE = b"\x1b[2J\x1b]0;pwned\x07\xc2\x9b31m\rname"


def gguf_string(b):
    return struct.pack("<Q", len(b)) + b


def write_gguf(path):
    kv = [(b"general.architecture", b"llama"), (b"general.name", HOSTILE),
          (b"evil." + HOSTILE, b"x")]
    out = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv))
    for key, value in kv:
        out += gguf_string(key) + struct.pack("<I", 8) + gguf_string(value)
    # one f32 tensor of 4 elements at offset 0 of the data section
    out += gguf_string(b"blk.0." + HOSTILE) + struct.pack("<I", 1) + struct.pack("<Q", 4)
    out += struct.pack("<IQ", 0, 0)
    out += b"\x00" * ((32 - len(out) % 32) % 32)
    out += struct.pack("<4f", 1, 2, 3, 4)
    with open(path, "wb") as f:
        f.write(out)


def main():
    inspect = os.path.join(h.bin_dir(), "shardlm-inspect")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hostile.gguf")
        write_gguf(path)
        for args in ([], ["--json"]):
            run = subprocess.run([inspect] + args + [path], capture_output=True, timeout=20)
            output = run.stdout + run.stderr
            print("inspect %s: exit %d, %d bytes" % (" ".join(args) or "(text)", run.returncode,
                                                     len(output)), flush=True)
            if b"pwned" not in output:
                h.fail("inspect %s did not show the hostile names at all:\n%r" % (args, output))
            for bad, name in ((b"\x1b", "ESC"), (b"\xc2\x9b", "CSI"), (b"\r", "CR"),
                              (b"\x07", "BEL")):
                if bad in output:
                    h.fail("inspect %s printed a raw %s byte:\n%r" % (args, name, output))
    print("PASS")


if __name__ == "__main__":
    main()
