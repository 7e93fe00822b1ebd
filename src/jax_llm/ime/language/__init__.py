"""The input method's language: text to words and codes (`codes`), the word stream and its vocabulary
(`words`), and the typing language's keys and what a word costs in them (`keys`)."""
