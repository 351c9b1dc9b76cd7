"""For tests, benchmarks and demos: synthetic videos with known cuts (``videos``) and tiny random models
(``salova.tiny``). Nothing here downloads anything."""
