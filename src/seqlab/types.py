"""Types for the annotations of a task's arguments and of `respond`'s options.

They are pydantic's constraints (`Annotated[int, Field(ge=1)]`): seqlab.run.schema reads the
annotations and checks each config value and option against them before anything is built.
"""

from typing import Annotated

from pydantic import Field

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1)]
Rate = Annotated[float, Field(ge=0, lt=1)]  # a share that must leave something over (dropout, a split)
Dropout = Rate
Fraction = Annotated[float, Field(gt=0, lt=1)]
Temperature = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # 0: greedy
SampleSeed = Annotated[int, Field(ge=0, le=2**63 - 1)]  # what a torch.Generator takes
