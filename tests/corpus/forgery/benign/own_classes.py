# name: own-classes
# feature: the student's own classes with an ordinary __eq__ (a dataclass, a value class) in the namespace
from dataclasses import dataclass

@dataclass
class Point:
    x: float
    y: float

class Money:
    def __init__(self, cents):
        self.cents = cents

    def __eq__(self, other):
        return isinstance(other, Money) and self.cents == other.cents

    __hash__ = None

origin = Point(0, 0)
price = Money(100)
def mean(xs):
    return sum(xs) / len(xs)
