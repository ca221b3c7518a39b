namespace Runahead.Formats.Gguf;

/// <summary>
/// Builds a deterministic SentencePiece-style vocabulary for synthetic models: specials, 256 byte-fallback tokens,
/// then pieces from most to least useful (common words with and without the U+2581 word-start mark, single
/// characters, then letter n-grams) until the requested size is reached. Scores decrease with rank so that
/// SentencePiece merging prefers the earlier, more useful pieces.
/// </summary>
internal static class SyntheticVocabulary
{
    private const char WordStart = '\u2581';

    private static readonly string[] CommonWords =
    [
        "the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are", "with", "as",
        "I", "his", "they", "be", "at", "one", "have", "this", "from", "or", "had", "by", "not", "word", "but", "what",
        "some", "we", "can", "out", "other", "were", "all", "there", "when", "up", "use", "your", "how", "said", "an",
        "each", "she", "which", "do", "their", "time", "if", "will", "way", "about", "many", "then", "them", "write",
        "would", "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has", "look", "more",
        "day", "could", "go", "come", "did", "number", "sound", "no", "most", "people", "my", "over", "know", "water",
        "than", "call", "first", "who", "may", "down", "side", "been", "now", "find", "any", "new", "work", "part",
        "take", "get", "place", "made", "live", "where", "after", "back", "little", "only", "round", "man", "year",
        "came", "show", "every", "good", "me", "give", "our", "under", "name", "very", "through", "just", "form",
        "sentence", "great", "think", "say", "help", "low", "line", "differ", "turn", "cause", "much", "mean",
        "before", "move", "right", "boy", "old", "too", "same", "tell", "does", "set", "three", "want", "air", "well",
        "also", "play", "small", "end", "put", "home", "read", "hand", "port", "large", "spell", "add", "even",
        "land", "here", "must", "big", "high", "such", "follow", "act", "why", "ask", "men", "change", "went",
        "light", "kind", "off", "need", "house", "picture", "try", "us", "again", "animal", "point", "mother",
        "world", "near", "build", "self", "earth", "father", "head", "stand", "own", "page", "should", "country",
        "found", "answer", "school", "grow", "study", "still", "learn", "plant", "cover", "food", "sun", "four",
        "between", "state", "keep", "eye", "never", "last", "let", "thought", "city", "tree", "cross", "farm",
        "hard", "start", "might", "story", "saw", "far", "sea", "draw", "left", "late", "run", "while", "press",
        "close", "night", "real", "life", "few", "north", "once", "upon", "happy", "friend", "dog", "cat", "play",
        "Once", "The", "She", "He", "They", "It", "One", "Lily", "Tom", "mom", "ball", "park", "sky", "fun", "toy",
    ];

    public static (string[] tokens, double[] scores, long[] types) Build(int vocabSize)
    {
        if (vocabSize < 259) throw new ArgumentOutOfRangeException(nameof(vocabSize), "a synthetic vocabulary needs at least 259 tokens (3 specials + 256 bytes)");
        var tokens = new string[vocabSize];
        var scores = new double[vocabSize];
        var types = new long[vocabSize];
        tokens[0] = "<unk>"; types[0] = GgufTokenizerMetadata.Unknown;
        tokens[1] = "<s>"; types[1] = GgufTokenizerMetadata.Control;
        tokens[2] = "</s>"; types[2] = GgufTokenizerMetadata.Control;
        for (int b = 0; b < 256; b++)
        {
            tokens[3 + b] = $"<0x{b:X2}>";
            types[3 + b] = GgufTokenizerMetadata.Byte;
        }
        int n = 259;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var piece in Pieces())
        {
            if (n == vocabSize) break;
            if (!seen.Add(piece)) continue;
            tokens[n] = piece;
            scores[n] = -(n - 259);
            types[n] = GgufTokenizerMetadata.Normal;
            n++;
        }
        if (n != vocabSize) throw new InvalidOperationException("synthetic vocabulary generator ran out of pieces");
        return (tokens, scores, types);
    }

    /// <summary>
    /// Pieces in rank order, closed under "drop the last character": SentencePiece only reaches a piece by merging
    /// two pieces already in the vocabulary, so every word is preceded by its prefixes ("▁t", "▁th", "▁the").
    /// </summary>
    private static IEnumerable<string> Pieces()
    {
        yield return WordStart.ToString();
        for (char c = 'a'; c <= 'z'; c++) yield return c.ToString();
        for (char c = 'A'; c <= 'Z'; c++) yield return c.ToString();
        for (char c = '0'; c <= '9'; c++) yield return c.ToString();
        foreach (char c in ".,!?;:'\"-()[]{}/\\@#$%&*+=<>_~`|^") yield return c.ToString();
        for (char c = 'a'; c <= 'z'; c++) yield return WordStart + c.ToString();
        for (char c = 'A'; c <= 'Z'; c++) yield return WordStart + c.ToString();
        foreach (var w in CommonWords)
            for (int k = 1; k <= w.Length; k++) yield return WordStart + w[..k];
        foreach (var w in CommonWords)
            for (int k = 2; k <= w.Length; k++) yield return w[..k];
        // Letter n-grams, shortest first so that each one's prefix is already in; 26^4 is far beyond any vocabulary
        // we synthesize.
        const string letters = "etaoinshrdlcumwfgypbvkjxqz";
        for (int len = 2; len <= 4; len++)
        {
            var idx = new int[len];
            var chars = new char[len];
            while (true)
            {
                for (int i = 0; i < len; i++) chars[i] = letters[idx[i]];
                string s = new(chars);
                yield return s;
                yield return WordStart + s;
                int k = len - 1;
                while (k >= 0 && ++idx[k] == letters.Length) idx[k--] = 0;
                if (k < 0) break;
            }
        }
    }
}
