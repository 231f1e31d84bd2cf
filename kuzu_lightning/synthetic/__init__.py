"""The built-in synthetic pages: brush-written pages of imaginary books in the Kaggle layout (:mod:`.generator`),
their glyphs and hentaigana forms (:mod:`.glyphs`, ``hentaigana.csv``) and the fonts they are written in
(:mod:`.fonts`, ``brush_fonts/``)."""
