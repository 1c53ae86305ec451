"""The screens' keys and labels, without the screens: what the models and forms need to name a screen.

Kept apart from `quant.screens` (pandas) so that loading the scanner's models for a web request does not
load the dataframe library; `quant.screens.SCREENS` takes its labels from here.
"""
SCREEN_LABELS = {
    "momentum_breakout": "Momentum breakout",
    "high_52w": "52-week high",
    "relative_strength": "Relative strength",
}
