/**
 * Splits a command line into words the way a POSIX shell does — blanks separate words,
 * single quotes keep everything, double quotes keep everything but \" \\ \$ \`, a
 * backslash escapes the next character — with no expansion of any kind: no variables,
 * globs, tildes or substitutions. The words are run directly, never through a shell.
 */
export class WordsError extends Error {}

export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new WordsError('unterminated single quote');
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length && '"\\$`\n'.includes(line[j + 1]!)) {
          j++;
          if (line[j] !== '\n') word += line[j];
        } else word += line[j];
      }
      if (j >= line.length) throw new WordsError('unterminated double quote');
      i = j;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new WordsError('a backslash ends the command');
      i++;
      if (line[i] !== '\n') {
        word += line[i];
        inWord = true;
      }
    } else if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}
