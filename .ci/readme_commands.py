"""Print the README's two commands (the bash blocks under '## The two commands'), NUL-separated."""

import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]
sys.stdout.write("".join(b + "\0" for b in blocks))
